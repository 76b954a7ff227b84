"""What a user would see in the generated config: names, domains, splits, matches, endpoints."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc

from tests.unit.xds.conftest import SnapshotFactory
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import Proxy
from weft.xds import names, types
from weft.xds.cds import generate_clusters
from weft.xds.eds import generate_endpoints
from weft.xds.generate import InconsistentConfig, Resources, check_consistent, generate_all
from weft.xds.rds import http_proxy_routes

REVIEWS = "reviews.default.svc.cluster.local"


def vhost(config: object, name: str) -> rc.VirtualHost:
    for vh in config.virtual_hosts:  # type: ignore[attr-defined]
        if vh.name == name:
            return vh  # type: ignore[no-any-return]
    raise AssertionError(f"no virtual host {name}")


def test_virtual_hosts_use_istio_names(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    routes = http_proxy_routes(proxy, make_snapshot())
    vh = vhost(routes, f"{REVIEWS}:9080")
    assert set(vh.domains) == {
        f"{REVIEWS}:9080",
        "reviews.default.svc:9080",
        "reviews.default:9080",
        "reviews:9080",
    }
    # Without a VirtualService everything goes to the whole service, with Istio's retries.
    (route,) = vh.routes
    assert route.route.cluster == f"outbound|9080||{REVIEWS}"
    assert route.route.retry_policy.num_retries.value == 2
    # Unknown hosts get a clear 502 rather than a silent 404.
    assert routes.virtual_hosts[-1].domains == ["*"]
    assert routes.virtual_hosts[-1].routes[0].direct_response.status == 502


def test_short_names_only_for_callers_in_the_same_namespace(make_snapshot: SnapshotFactory,
                                                            proxy: Proxy) -> None:  # fmt: skip
    other = replace(proxy, namespace="shop")
    vh = vhost(http_proxy_routes(other, make_snapshot()), f"{REVIEWS}:9080")
    assert "reviews:9080" not in vh.domains
    assert "reviews.default:9080" in vh.domains


def test_weighted_split_targets_subset_clusters(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(files=("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"))
    (route,) = vhost(http_proxy_routes(proxy, snap), f"{REVIEWS}:9080").routes
    weights = {c.name: c.weight.value for c in route.route.weighted_clusters.clusters}
    assert weights == {f"outbound|9080|v1|{REVIEWS}": 80, f"outbound|9080|v3|{REVIEWS}": 20}


def test_header_match_then_catch_all(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    snap = make_snapshot(
        files=("destination-rule-all.yaml", "virtual-service-reviews-jason-v2.yaml")
    )
    first, second = vhost(http_proxy_routes(proxy, snap), f"{REVIEWS}:9080").routes
    (header,) = first.match.headers
    assert header.name == "end-user"
    assert header.string_match.exact == "jason"
    assert first.route.cluster == f"outbound|9080|v2|{REVIEWS}"
    assert second.match.prefix == "/" and not second.match.headers
    assert second.route.cluster == f"outbound|9080|v1|{REVIEWS}"


def test_uri_matches_rewrite_timeout_and_retries(make_snapshot: SnapshotFactory,
                                                 proxy: Proxy) -> None:  # fmt: skip
    snap = make_snapshot(
        """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {exact: /ratings/0}}]
    directResponse: {status: 418, body: {string: teapot}}
  - match: [{uri: {regex: "/ratings/[0-9]+"}, method: {exact: GET}}]
    rewrite: {uri: /v2/ratings}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,409"}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
"""
    )
    routes = vhost(http_proxy_routes(proxy, snap), "ratings.default.svc.cluster.local:9080").routes
    assert [r.match.WhichOneof("path_specifier") for r in routes] == [
        "path",
        "safe_regex",
        "prefix",
    ]
    assert routes[0].direct_response.status == 418
    assert routes[0].direct_response.body.inline_string == "teapot"
    action = routes[1].route
    assert action.prefix_rewrite == "/v2/ratings"
    assert action.timeout.seconds == 1 and action.timeout.nanos == 500_000_000
    assert action.retry_policy.num_retries.value == 3
    assert action.retry_policy.retry_on == "5xx,retriable-status-codes"
    assert list(action.retry_policy.retriable_status_codes) == [409]
    assert routes[1].match.headers[0].name == ":method"
    assert routes[2].redirect.path_redirect == "/new"
    assert routes[2].redirect.response_code == rc.RedirectAction.FOUND


def test_subset_endpoints_follow_labels(make_snapshot: SnapshotFactory) -> None:
    snap = make_snapshot(files=("destination-rule-all.yaml",))
    cla = generate_endpoints([f"outbound|9080|v2|{REVIEWS}"], snap, "default")[0]
    ports = [
        e.endpoint.address.socket_address.port_value
        for le in cla.endpoints
        for e in le.lb_endpoints
    ]
    assert ports == [20004]
    all_ports = sorted(
        e.endpoint.address.socket_address.port_value
        for le in generate_endpoints([f"outbound|9080||{REVIEWS}"], snap, "default")[0].endpoints
        for e in le.lb_endpoints
    )
    assert all_ports == [20003, 20004, 20005]
    # A subset no DestinationRule defines is empty, never "everything".
    assert not generate_endpoints([f"outbound|9080|v9|{REVIEWS}"], snap, "default")[0].endpoints


def test_unhealthy_endpoints_are_not_served() -> None:
    registry = LocalRegistry()
    for name, healthy in (("a", True), ("b", False)):
        registry.register(
            Workload(name, "default", "svc", "127.0.0.1", (WorkloadPort(80, 1000 + ord(name)),),
                     frozen_labels({"app": "svc"}), healthy=healthy)
        )  # fmt: skip
    snap = build_snapshot(1, [], registry.services(), registry.endpoints())
    cla = generate_endpoints(["outbound|80||svc.default.svc.cluster.local"], snap, "default")[0]
    assert [e.endpoint.address.socket_address.port_value
            for le in cla.endpoints for e in le.lb_endpoints] == [1000 + ord("a")]  # fmt: skip
    # Port 80: the bare name is a valid Host, as HTTP omits the default port.
    proxy = Proxy(id="x", namespace="default", proxy_port=1)
    vh = vhost(http_proxy_routes(proxy, snap), "svc.default.svc.cluster.local:80")
    assert "svc" in vh.domains and "svc:80" in vh.domains


def test_clusters_per_subset_and_inbound(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    snap = make_snapshot(files=("destination-rule-all.yaml",))
    clusters = {c.name for c in generate_clusters(proxy, snap)}
    assert {f"outbound|9080|{s}|{REVIEWS}" for s in ("", "v1", "v2", "v3")} <= clusters
    assert names.inbound_cluster(9080) in clusters


def test_sidecar_egress_scopes_what_a_proxy_sees(make_snapshot: SnapshotFactory,
                                                 proxy: Proxy) -> None:  # fmt: skip
    snap = make_snapshot(
        """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - hosts: ["./reviews", "./details"]
"""
    )
    outbound = {c.name for c in generate_clusters(proxy, snap) if c.name.startswith("outbound")}
    assert outbound == {
        f"outbound|9080||{REVIEWS}",
        "outbound|9080||details.default.svc.cluster.local",
    }


def test_destination_rule_policy_reaches_the_cluster(make_snapshot: SnapshotFactory,
                                                     proxy: Proxy) -> None:  # fmt: skip
    snap = make_snapshot(
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 3}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
"""
    )
    clusters = {c.name: c for c in generate_clusters(proxy, snap)}
    top = clusters[f"outbound|9080||{REVIEWS}"]
    assert top.lb_policy == top.RANDOM
    assert top.circuit_breakers.thresholds[0].max_connections.value == 7
    assert top.circuit_breakers.thresholds[0].max_pending_requests.value == 3
    assert top.connect_timeout.nanos == 250_000_000
    assert top.outlier_detection.consecutive_5xx.value == 2
    v1 = clusters[f"outbound|9080|v1|{REVIEWS}"]
    assert v1.lb_policy == v1.ROUND_ROBIN  # the subset's own policy wins
    assert v1.circuit_breakers.thresholds[0].max_connections.value == 7  # the rest is inherited


def test_generated_config_is_consistent_and_versions_follow_content(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    a = generate_all(proxy, make_snapshot())
    b = generate_all(proxy, make_snapshot())
    assert {t: r.version for t, r in a.items()} == {t: r.version for t, r in b.items()}
    c = generate_all(proxy, make_snapshot(files=("destination-rule-all.yaml",)))
    assert c[types.CLUSTER].version != a[types.CLUSTER].version
    assert c[types.LISTENER].version == a[types.LISTENER].version


def test_consistency_check_names_what_is_missing() -> None:
    empty = {t: Resources.of(t, []) for t in types.PUSH_ORDER}
    with pytest.raises(InconsistentConfig, match=re.escape("outbound|80||x")):
        check_consistent(empty, ["outbound|80||x"], [])


def _tls_context(cluster: object) -> object:
    from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

    ctx = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(ctx)  # type: ignore[attr-defined]
    return ctx


def _sidecar_proxy(proxy: Proxy) -> Proxy:
    return replace(proxy, sds=True)


def test_destination_rule_tls_modes(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    snap = make_snapshot(
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: reviews.example, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/x"]}
  subsets:
  - name: plain
    labels: {version: v1}
    trafficPolicy: {tls: {mode: DISABLE}}
  - name: simple
    labels: {version: v2}
    trafficPolicy: {tls: {mode: SIMPLE, sni: api.example, caCertificates: /etc/ca.pem}}
"""
    )
    clusters = {c.name: c for c in generate_clusters(_sidecar_proxy(proxy), snap)}
    mutual = _tls_context(clusters[f"outbound|9080||{REVIEWS}"])
    assert mutual.sni == "reviews.example"  # type: ignore[attr-defined]
    sans = mutual.common_tls_context.combined_validation_context.default_validation_context  # type: ignore[attr-defined]
    assert [m.matcher.exact for m in sans.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/default/sa/x"
    ]
    plain = clusters[f"outbound|9080|plain|{REVIEWS}"]
    assert not plain.HasField("transport_socket") and not plain.transport_socket_matches
    simple = _tls_context(clusters[f"outbound|9080|simple|{REVIEWS}"])
    assert simple.sni == "api.example"  # type: ignore[attr-defined]
    assert simple.common_tls_context.validation_context.trusted_ca.filename == "/etc/ca.pem"  # type: ignore[attr-defined]


def test_auto_mtls_needs_a_client_certificate(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    snap = make_snapshot()
    without = {c.name: c for c in generate_clusters(proxy, snap)}
    assert not without[f"outbound|9080||{REVIEWS}"].transport_socket_matches
    with_certs = {c.name: c for c in generate_clusters(_sidecar_proxy(proxy), snap)}
    matches = with_certs[f"outbound|9080||{REVIEWS}"].transport_socket_matches
    assert [m.name for m in matches] == ["tlsMode-istio", "tlsMode-disabled"]


def test_cached_generation_equals_the_reference_for_every_proxy_shape(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    """Proxies sharing a view share outbound config; each still gets exactly its own config."""
    from weft.snapshot.proxy import InboundPort
    from weft.xds.cache import GenerationCache

    snap = make_snapshot(
        files=("destination-rule-all.yaml", "virtual-service-reviews-jason-v2.yaml")
    )
    shapes = [
        proxy,
        replace(proxy, id="b", proxy_port=15002, inbound=(InboundPort(9080, 20009, 30009),)),
        replace(proxy, id="c", sds=True),
        replace(proxy, id="d", namespace="shop"),
        replace(proxy, id="e", proxy_port=None),
    ]
    cache = GenerationCache()
    for shape in shapes:
        reference = generate_all(shape, snap)
        cached = cache.get(shape, snap)
        assert {t: r.version for t, r in cached.items()} == {
            t: r.version for t, r in reference.items()
        }, shape.id
        assert {t: dict(r.items) for t, r in cached.items()} == {
            t: dict(r.items) for t, r in reference.items()
        }
    # a, b and e differ only in their own ports: one shared build served all three.
    assert cache.view_count == 3
