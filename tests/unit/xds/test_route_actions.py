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
