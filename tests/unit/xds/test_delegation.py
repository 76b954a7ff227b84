"""Delegate VirtualServices: a root's route hands requests to another VirtualService's routes,
merged under the root route's matches as Istio does."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from tests.unit.xds.conftest import SnapshotFactory
from weft.api import HTTPMatchRequest, StringMatch
from weft.snapshot.proxy import Proxy
from weft.xds.delegation import merge_matches
from weft.xds.rds import http_proxy_routes

REVIEWS = "reviews.default.svc.cluster.local"

ROOT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: api
    match: [{uri: {prefix: /reviews}, headers: {x-team: {exact: books}}}]
    delegate: {name: reviews-routes, namespace: team}
    timeout: 3s
    mirror: {host: ratings}
  - route: [{destination: {host: reviews, subset: v1}}]
"""

DELEGATE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-routes, namespace: team}
spec:
  http:
  - name: beta
    match: [{uri: {prefix: /reviews/beta}}]
    timeout: 1s
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v3}}]
  - match: [{uri: {prefix: /ratings}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
"""


def reviews_routes(snap: object, proxy: Proxy) -> list[rc.Route]:
    for vh in http_proxy_routes(proxy, snap).virtual_hosts:  # type: ignore[arg-type]
        if vh.name == f"{REVIEWS}:9080":
            return list(vh.routes)
    raise AssertionError("no reviews virtual host")


def summary(route: rc.Route) -> tuple[str, str, list[str], str, str]:
    headers = [f"{h.name}={h.string_match.exact}" for h in route.match.headers]
    return (
        route.name,
        route.match.prefix,
        headers,
        route.route.cluster,
        f"{route.route.timeout.seconds}s",
    )


def test_delegate_routes_are_merged_under_the_root_route(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    routes = reviews_routes(make_snapshot(ROOT, DELEGATE), proxy)
    assert [summary(r) for r in routes] == [
        # Narrowed by the root's match; the delegate's own timeout wins over the root's.
        ("api-beta", "/reviews/beta", ["x-team=books"], f"outbound|9080|v3|{REVIEWS}", "1s"),
        # /ratings is outside the root's /reviews: Istio ignores that delegate route.
        # A delegate route without a match takes the root's, and the root's timeout.
        ("api", "/reviews", ["x-team=books"], f"outbound|9080|v2|{REVIEWS}", "3s"),
        ("default/reviews[1]", "/", [], f"outbound|9080|v1|{REVIEWS}", "0s"),
    ]
    # The root's mirror applies to the delegate's routes, named in the root's namespace.
    assert [m.cluster for m in routes[0].route.request_mirror_policies] == [
        "outbound|9080||ratings.default.svc.cluster.local"
    ]


def test_short_names_in_a_delegate_are_its_own_namespaces(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    delegate = DELEGATE.replace("reviews.default.svc.cluster.local", "reviews")
    routes = reviews_routes(make_snapshot(ROOT, delegate), proxy)
    assert routes[0].route.cluster == "outbound|9080|v3|reviews.team.svc.cluster.local"


def test_a_missing_or_unexported_delegate_contributes_nothing(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    for snap in (
        make_snapshot(ROOT),
        make_snapshot(ROOT, DELEGATE.replace("spec:\n", "spec:\n  exportTo: ['.']\n", 1)),
        # A VirtualService with hosts is never a delegate.
        make_snapshot(ROOT, DELEGATE.replace("spec:\n", "spec:\n  hosts: [other]\n", 1)),
    ):
        (only,) = reviews_routes(snap, proxy)
        assert only.route.cluster == f"outbound|9080|v1|{REVIEWS}"


def match(**fields: object) -> HTTPMatchRequest:
    return HTTPMatchRequest.model_validate(fields)


def test_a_delegate_match_must_fit_inside_a_root_match() -> None:
    root = [match(uri={"prefix": "/a"}), match(uri={"prefix": "/b"}, port=9080)]
    # Fits under both root matches: one merged match for each.
    merged = merge_matches(root, [match(headers={"x": {"exact": "1"}})])
    assert merged is not None
    assert [(m.uri, m.port, list(m.headers)) for m in merged] == [
        (StringMatch(prefix="/a"), None, ["x"]),
        (StringMatch(prefix="/b"), 9080, ["x"]),
    ]
    narrower = merge_matches(root, [match(uri={"exact": "/b/c"})])
    assert narrower is not None and [m.port for m in narrower] == [9080]
    for conflicting in (
        match(uri={"prefix": "/c"}),  # outside every root prefix
        match(uri={"regex": "/a.*"}),  # a regex cannot be compared with a prefix
        match(uri={"prefix": "/b"}, port=8080),  # another port
        match(uri={"prefix": "/a"}, ignoreUriCase=True),
    ):
        assert merge_matches(root, [conflicting]) is None, conflicting
    # Exact values must agree; source labels must not contradict.
    exact = [match(method={"exact": "GET"}, sourceLabels={"app": "web"})]
    assert merge_matches(exact, [match(method={"exact": "POST"})]) is None
    assert merge_matches(exact, [match(sourceLabels={"app": "cli"})]) is None
    both = merge_matches(exact, [match(sourceLabels={"tier": "front"})])
    assert both is not None and both[0].source_labels == {"app": "web", "tier": "front"}
