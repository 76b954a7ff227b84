"""ServiceEntry and WorkloadEntry in the snapshot: the services and endpoints they add."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2

from tests.unit.snapshot.conftest import discovered, hostname, objects, proxy, snapshot
from weft.registry.model import Endpoint, frozen_labels
from weft.snapshot.build import build_snapshot
from weft.xds.cds import generate_clusters

STATIC_DB = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal]
  location: MESH_INTERNAL
  ports: [{number: 5432, name: tcp-db, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - address: 10.0.0.5
    ports: {tcp-db: 15432}
    labels: {role: primary}
    serviceAccount: db
  - address: 10.0.0.6
    weight: 3
    locality: eu/west-1
"""

DNS_API = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""

SELECTED_VMS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: vms}
spec:
  hosts: [legacy.vms.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: legacy}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy-vm-1, namespace: vms}
spec:
  address: 10.1.0.1
  ports: {http: 18080}
  labels: {app: legacy, version: v1}
  serviceAccount: legacy
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy-vm-2, namespace: vms}
spec:
  address: 10.1.0.2
  labels: {app: legacy, version: v2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-app, namespace: vms}
spec:
  address: 10.1.0.3
  labels: {app: other}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy-elsewhere, namespace: default}
spec:
  address: 10.1.0.4
  labels: {app: legacy}
"""


def test_static_service_entry_adds_a_service_with_its_endpoints() -> None:
    snap = snapshot(STATIC_DB)
    service = snap.service("db.internal")
    assert service is not None
    assert (service.namespace, service.resolution, service.mesh_external) == (
        "default",
        "STATIC",
        False,
    )
    assert [(p.port, p.name, p.protocol) for p in service.ports] == [(5432, "tcp-db", "TCP")]
    first, second = snap.endpoints_of("db.internal")
    # A named port on the endpoint overrides the service port; without one it is the same.
    assert (first.address, first.target_port(5432)) == ("10.0.0.5", 15432)
    assert (dict(first.labels), first.service_account) == ({"role": "primary"}, "db")
    assert (second.address, second.target_port(5432)) == ("10.0.0.6", 5432)
    assert (second.weight, second.locality) == (3, "eu/west-1")


def test_static_service_entry_becomes_an_eds_cluster() -> None:
    (cluster,) = [
        c for c in generate_clusters(proxy(), snapshot(STATIC_DB)) if "db.internal" in c.name
    ]
    assert cluster.name == "outbound|5432||db.internal"
    assert cluster.type == cluster_pb2.Cluster.EDS


def test_dns_service_entry_resolves_its_own_host() -> None:
    snap = snapshot(DNS_API)
    service = snap.service("api.example.com")
    assert service is not None
    assert (service.resolution, service.mesh_external) == ("DNS", True)
    (ep,) = snap.endpoints_of("api.example.com")
    assert (ep.address, dict(ep.ports)) == ("api.example.com", {443: 443})
    (cluster,) = [c for c in generate_clusters(proxy(), snap) if "api.example.com" in c.name]
    assert cluster.type == cluster_pb2.Cluster.STRICT_DNS
    (locality,) = cluster.load_assignment.endpoints
    (lb,) = locality.lb_endpoints
    socket = lb.endpoint.address.socket_address
    assert (socket.address, socket.port_value) == ("api.example.com", 443)


DNS_WITH_ENDPOINTS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints:
  - address: us.api.example.com
  - address: eu.api.example.com
"""


def test_dns_service_entry_keeps_its_endpoint_names() -> None:
    snap = snapshot(DNS_WITH_ENDPOINTS)
    assert [ep.address for ep in snap.endpoints_of("api.example.com")] == [
        "us.api.example.com",
        "eu.api.example.com",
    ]


def test_dns_service_entry_with_endpoints_resolves_the_endpoints() -> None:
    snap = snapshot(DNS_WITH_ENDPOINTS)
    (cluster,) = [c for c in generate_clusters(proxy(), snap) if "api.example.com" in c.name]
    resolved = [
        lb.endpoint.address.socket_address.address
        for locality in cluster.load_assignment.endpoints
        for lb in locality.lb_endpoints
    ]
    assert resolved == ["us.api.example.com", "eu.api.example.com"]


def test_workload_selector_picks_workload_entries_in_its_namespace() -> None:
    snap = snapshot(SELECTED_VMS)
    host = "legacy.vms.svc.cluster.local"
    assert snap.service(host) is not None
    endpoints = snap.endpoints_of(host)
    assert [(ep.address, ep.target_port(8080)) for ep in endpoints] == [
        ("10.1.0.1", 18080),  # port named "http" on the entry
        ("10.1.0.2", 8080),  # no port of that name: the service port
    ]
    assert [ep.labels["version"] for ep in endpoints] == ["v1", "v2"]
    assert endpoints[0].service_account == "legacy"


def test_workload_selector_also_picks_registered_workloads() -> None:
    services, endpoints = discovered()
    vm_host = hostname("legacy-agent", "vms")
    registered = Endpoint(
        service=vm_host,
        address="127.0.0.1",
        ports={8080: 20100},
        labels=frozen_labels({"app": "legacy"}),
        namespace="vms",
        workload="legacy-agent-1",
    )
    snap = snapshot(
        SELECTED_VMS, services=services, endpoints={**endpoints, vm_host: (registered,)}
    )
    selected = snap.endpoints_of("legacy.vms.svc.cluster.local")
    assert ("127.0.0.1", 20100) in [(ep.address, ep.target_port(8080)) for ep in selected]


def test_discovered_service_wins_over_a_service_entry_of_the_same_host() -> None:
    shadow = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.9.9.9}]
"""
    snap = snapshot(shadow)
    reviews = hostname("reviews", "default")
    service = snap.service(reviews)
    assert service is not None and service.source == "local"
    assert [p.port for p in service.ports] == [9080]
    assert [ep.address for ep in snap.endpoints_of(reviews)] == ["127.0.0.1"]


def test_service_entry_with_several_hosts_adds_each() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: search, namespace: default}
spec:
  hosts: [a.example.com, b.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""
    snap = snapshot(text)
    assert [ep.address for ep in snap.endpoints_of("a.example.com")] == ["a.example.com"]
    assert [ep.address for ep in snap.endpoints_of("b.example.com")] == ["b.example.com"]


def test_snapshot_indexes_routing_config_in_namespace_name_order() -> None:
    texts = [
        f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{host: reviews}}
"""
        for namespace, name in [("shop", "a"), ("default", "z"), ("default", "b")]
    ]
    services, endpoints = discovered()
    snap = build_snapshot(7, objects(*texts), services, endpoints)
    assert snap.version == 7
    assert [(d.metadata.namespace, d.metadata.name) for d in snap.destination_rules] == [
        ("default", "b"),
        ("default", "z"),
        ("shop", "a"),
    ]
    assert list(snap.services) == sorted(snap.services)


def test_building_is_pure() -> None:
    services, endpoints = discovered()
    before = (dict(services), dict(endpoints))
    config = objects(STATIC_DB, SELECTED_VMS)
    first = build_snapshot(1, config, services, endpoints)
    assert build_snapshot(1, config, services, endpoints) == first
    # ServiceEntries are merged into the snapshot, never into the caller's registry view.
    assert (services, endpoints) == before
    assert "db.internal" in first.services and "db.internal" not in services
