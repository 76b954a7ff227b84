"""The names a virtual host answers to, and the addresses of endpoints."""

from __future__ import annotations

from tests.unit.xds.conftest import SnapshotFactory
from weft.snapshot.proxy import Proxy
from weft.xds.eds import generate_endpoints
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


def test_endpoints_are_addresses_or_unix_sockets(make_snapshot: SnapshotFactory) -> None:
    snap = make_snapshot("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: by-socket}
spec: {address: "unix:///run/api.sock", labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: by-name}
spec: {address: api.internal, labels: {app: api}}
""")
    (assignment,) = generate_endpoints(["outbound|80||api.example.com"], snap, "default")
    addresses = [e.endpoint.address for le in assignment.endpoints for e in le.lb_endpoints]
    # The socket is a pipe; the entry known only by name cannot be in EDS and is left out.
    assert [a.pipe.path for a in addresses] == ["/run/api.sock"]
