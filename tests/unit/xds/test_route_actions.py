"""HTTP route actions as Envoy gets them: bodies, redirects, faults, mirrors, hash keys."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from tests.unit.xds.conftest import SnapshotFactory
from weft.snapshot.proxy import Proxy
from weft.xds.rds import http_proxy_routes

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
