"""HTTP route actions as Envoy gets them: bodies, redirects, faults, mirrors, hash keys."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from tests.unit.xds.conftest import SnapshotFactory
from weft.snapshot.proxy import Proxy
from weft.xds.rds import http_proxy_routes
from weft.xds.routes import FAULT_FILTER

REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"


def routes_of(snap: object, proxy: Proxy, host: str = RATINGS, port: int = 9080) -> list[rc.Route]:
    config = http_proxy_routes(proxy, snap)  # type: ignore[arg-type]
    for vh in config.virtual_hosts:
        if vh.name == f"{host}:{port}":
            return list(vh.routes)
    raise AssertionError(f"no virtual host {host}:{port}")


def ratings_rule(http: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ratings}}
spec:
  hosts: [ratings]
  http:
{http}
"""


def test_a_direct_response_body_in_bytes_is_sent_decoded(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {exact: /raw}}]
    directResponse: {status: 200, body: {bytes: "AAH/c3RhcnM="}}
  - directResponse: {status: 503, body: {string: closed}}
""")
    )
    raw, text = routes_of(snap, proxy)
    assert raw.direct_response.body.inline_bytes == b"\x00\x01\xffstars"
    assert raw.direct_response.status == 200
    assert text.direct_response.body.inline_string == "closed"


def test_redirect_ports_derived_from_the_request_or_the_protocol(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /same}}]
    redirect: {uri: /new, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {prefix: /default}}]
    redirect: {uri: /new, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {prefix: /secure}}]
    redirect: {uri: /new, scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {prefix: /elsewhere}}]
    redirect: {authority: details, derivePort: FROM_PROTOCOL_DEFAULT}
  - redirect: {uri: /new, port: 8443}
""")
    )
    same, default, secure, elsewhere, fixed = (r.redirect for r in routes_of(snap, proxy))
    # The virtual host serves ratings:9080 only: the request's port is 9080.
    assert same.port_redirect == 9080
    assert default.port_redirect == 80
    assert (secure.scheme_redirect, secure.port_redirect) == ("https", 443)
    # A new authority without a port already means the scheme's default port.
    assert (elsewhere.host_redirect, elsewhere.port_redirect) == ("details", 0)
    assert fixed.port_redirect == 8443


def fault_of(route: rc.Route) -> fault_pb2.HTTPFault:
    fault = fault_pb2.HTTPFault()
    assert route.typed_per_filter_config[FAULT_FILTER].Unpack(fault)
    return fault


def test_fault_shares_follow_istio_including_the_deprecated_integer_percent(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /a}}]
    fault:
      delay: {fixedDelay: 1s, percent: 30}
      abort: {httpStatus: 500, percentage: {value: 2.5}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /b}}]
    fault: {delay: {fixedDelay: 1s, percent: 30, percentage: {value: 0.1}}}
    route: [{destination: {host: ratings}}]
  - fault: {delay: {fixedDelay: 1s}, abort: {grpcStatus: UNAVAILABLE}}
    route: [{destination: {host: ratings}}]
""")
    )
    a, b, unspecified = (fault_of(r) for r in routes_of(snap, proxy))
    assert a.delay.percentage.numerator == 300_000  # per million
    assert a.abort.percentage.numerator == 25_000
    assert b.delay.percentage.numerator == 1_000  # percentage wins over percent
    # As Istio documents: a fault without a percentage delays and aborts nothing.
    assert unspecified.delay.percentage.numerator == 0
    assert unspecified.abort.percentage.numerator == 0
    assert unspecified.abort.grpc_status == 14


def test_mirror_shares_follow_istio_including_the_deprecated_integer_percent(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /int}}]
    mirror: {host: details}
    mirrorPercent: 40
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /none}}]
    mirror: {host: details}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: ratings}}]
  - mirrors:
    - {destination: {host: details}}
    - {destination: {host: reviews}, percentage: {value: 12.5}}
    - {destination: {host: productpage}, percentage: {value: 0}}
    route: [{destination: {host: ratings}}]
""")
    )
    share, none, several = (r.route.request_mirror_policies for r in routes_of(snap, proxy))
    assert [m.runtime_fraction.default_value.numerator for m in share] == [400_000]
    assert list(none) == []  # a zero share mirrors nothing at all
    assert [m.runtime_fraction.default_value.numerator for m in several] == [1_000_000, 125_000]


def test_mirror_hosts_resolve_like_destinations(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /one}}]
    mirror: {host: reviews, subset: v2}
    route: [{destination: {host: ratings}}]
  - mirrors:
    - {destination: {host: details.default.svc.cluster.local, port: {number: 9080}}}
    - {destination: {host: unknown}}
    route: [{destination: {host: ratings}}]
""")
    )
    one, several = (r.route.request_mirror_policies for r in routes_of(snap, proxy))
    # A short name is the VirtualService's namespace's; the port is the service's only one.
    assert [m.cluster for m in one] == [f"outbound|9080|v2|{REVIEWS}"]
    assert [m.cluster for m in several] == [
        "outbound|9080||details.default.svc.cluster.local",
        # Not in the registry: the port being routed, as for a route destination.
        "outbound|9080||unknown.default.svc.cluster.local",
    ]


HASHED_RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-everyone}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {consistentHash: {httpQueryParameterName: user}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 60s}}}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
"""


def hash_keys(route: rc.Route) -> list[str]:
    keys: list[str] = []
    for policy in route.route.hash_policy:
        kind = policy.WhichOneof("policy_specifier")
        if kind == "header":
            keys.append(f"header {policy.header.header_name}")
        elif kind == "cookie":
            keys.append(f"cookie {policy.cookie.name} {policy.cookie.ttl.seconds}s")
        elif kind == "query_parameter":
            keys.append(f"query {policy.query_parameter.name}")
        else:
            keys.append(f"source ip {policy.connection_properties.source_ip}")
    return keys


def test_hash_keys_come_from_the_policy_of_each_destination(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        HASHED_RULE,
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {split: {exact: "yes"}}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
  - match: [{headers: {plain: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews}}]
""",
    )
    split, plain, whole = routes_of(snap, proxy, REVIEWS)
    assert hash_keys(split) == ["header x-user", "cookie session 60s"]
    assert hash_keys(plain) == []  # v3 balances round robin: no key
    assert hash_keys(whole) == ["query user"]  # the port's setting beats the rule's
    # A service without a VirtualService still hashes by its rule's key.
    (default,) = routes_of(snap, proxy, "details.default.svc.cluster.local")
    assert hash_keys(default) == ["source ip True"]


def test_a_match_for_named_gateways_only_is_not_a_sidecars(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /edge}, gateways: [ingress]}]
    directResponse: {status: 403}
  - match: [{uri: {prefix: /both}, gateways: [ingress, mesh], sourceLabels: {app: nobody}}]
    directResponse: {status: 200}
  - route: [{destination: {host: ratings}}]
""")
    )
    both, rest = routes_of(snap, proxy)
    assert (both.match.prefix, both.direct_response.status) == ("/both", 200)
    assert rest.route.cluster == f"outbound|9080||{RATINGS}"


def test_setting_the_authority_header_rewrites_the_authority(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(
        ratings_rule("""
  - match: [{uri: {prefix: /route}}]
    headers: {request: {set: {":authority": ratings.internal, x-kept: "1"}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /rewrite}}]
    headers: {request: {add: {host: ignored}}}
    rewrite: {authority: wins.internal}
    route: [{destination: {host: ratings}}]
  - route:
    - {destination: {host: ratings}, weight: 50, headers: {request: {set: {Host: a.internal}}}}
    - {destination: {host: details}, weight: 50}
""")
    )
    on_route, rewritten, split = routes_of(snap, proxy)
    assert on_route.route.host_rewrite_literal == "ratings.internal"
    assert [h.header.key for h in on_route.request_headers_to_add] == ["x-kept"]
    assert rewritten.route.host_rewrite_literal == "wins.internal"
    first, second = split.route.weighted_clusters.clusters
    assert (first.host_rewrite_literal, list(first.request_headers_to_add)) == ("a.internal", [])
    assert not second.HasField("host_rewrite_literal")
