"""The names a virtual host answers to."""

from __future__ import annotations

from tests.unit.xds.conftest import SnapshotFactory
from weft.snapshot.proxy import Proxy
from weft.xds.rds import http_proxy_routes


def test_a_wildcard_host_has_no_short_names(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    snap = make_snapshot("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wide}
spec:
  hosts: ['*.default.svc.cluster.local']
  ports: [{name: http, number: 80, protocol: HTTP}]
""")
    config = http_proxy_routes(proxy, snap)
    domains = [d for vh in config.virtual_hosts for d in vh.domains]
    assert "*.default.svc.cluster.local" in domains
    # Only the last virtual host may claim every authority; Envoy refuses a second "*".
    assert domains.count("*") == 1 and config.virtual_hosts[-1].domains == ["*"]
    assert "*.default" not in domains
