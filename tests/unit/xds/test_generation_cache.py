"""Cached, scoped, incremental generation serves exactly what generation from scratch would.

A control plane (in memory, no servers) goes through a sequence of changes of every kind; after
each, every connected proxy's config as the server would send it (from the generation cache,
the endpoint fast path and push scope) must equal `generate_all` on a snapshot built from
scratch, and every proxy whose config changed must have been woken for a push. A cache key
missing an input, or a push scope too narrow, fails here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from weft.api.loader import load_yaml
from weft.config.memory import MemoryStore
from weft.contract.node import node_id
from weft.controlplane.app import ControlPlane, ControlPlaneOptions
from weft.registry.local import Workload, WorkloadPort
from weft.registry.model import TLS_MODE_LABEL, frozen_labels
from weft.xds.connection import Connection

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "bookinfo"


def workload(
    service: str,
    version: str,
    port: int,
    *,
    namespace: str = "default",
    account: str | None = None,
    healthy: bool = True,
) -> Workload:
    return Workload(
        name=f"{service}-{version}",
        namespace=namespace,
        service=service,
        address="127.0.0.1",
        ports=(WorkloadPort(9080, port),),
        labels=frozen_labels({"app": service, "version": version, TLS_MODE_LABEL: "istio"}),
        service_account=account or f"bookinfo-{service}",
        healthy=healthy,
    )


BOOKINFO = [
    workload("productpage", "v1", 20001),
    workload("details", "v1", 20002),
    workload("reviews", "v1", 20003),
    workload("reviews", "v2", 20004),
    workload("reviews", "v3", 20005),
    workload("ratings", "v1", 20006),
    workload("payments", "v1", 20007, namespace="shop"),
]

# (workload, namespace, labels, inbound port, HTTP proxy port)
PROXIES = [
    ("productpage-v1", "default", {"app": "productpage", "version": "v1"}, 20001, 15001),
    ("reviews-v1", "default", {"app": "reviews", "version": "v1"}, 20003, 15003),
    ("ratings-v1", "default", {"app": "ratings", "version": "v1"}, 20006, 15006),
    ("payments-v1", "shop", {"app": "payments", "version": "v1"}, 20007, 15007),
    ("jason-client", "default", {"app": "client", "user": "jason"}, 20008, 15008),
]


def node(
    name: str, namespace: str, labels: dict[str, str], inbound: int, port: int
) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "NAMESPACE": namespace,
            "WORKLOAD_NAME": name,
            "WEFT_SERVICE": name.rsplit("-", 1)[0],
            "LABELS": labels,
            "WEFT_PROXY_PORT": str(port),
            "WEFT_SDS": "true",
            "WEFT_INBOUND": [
                {"servicePort": 9080, "inboundPort": inbound, "appPort": inbound + 10000}
            ],
        }
    )
    return base_pb2.Node(id=node_id(name, namespace), metadata=metadata)


def objects(text: str) -> list:  # type: ignore[type-arg]
    return load_yaml(text, "<test>")


def sample(path: str) -> list:  # type: ignore[type-arg]
    return load_yaml((SAMPLES / path).read_text(), path)


def vs_reviews(*weights: tuple[str, int]) -> str:
    routes = "".join(
        f"    - destination: {{host: reviews, subset: {s}}}\n      weight: {w}\n"
        for s, w in weights
    )
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: reviews, namespace: default}\n"
        f"spec:\n  hosts: [reviews]\n  http:\n  - route:\n{routes}"
    )


SOURCE_LABELS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceLabels: {user: jason}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
"""

SELECTING_ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-vm, namespace: default}
spec:
  hosts: [reviews.vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
"""

DETAILS_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - timeout: 2s
    route: [{destination: {host: details}}]
"""

WILDCARD_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: everything, namespace: default}
spec:
  hosts: ["*.svc.cluster.local"]
  http:
  - timeout: 3s
    route: [{destination: {host: details}}]
"""

SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings, namespace: default}
spec:
  workloadSelector: {labels: {app: ratings}}
  egress: [{hosts: ["./reviews", "shop/*"]}]
"""

DR_LEAST_CONN = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""

PA_PORT_DISABLE = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  portLevelMtls: {9080: {mode: DISABLE}}
"""

JWKS = '{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}'
REQUEST_AUTHN = f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: productpage}}}}
  jwtRules:
  - issuer: issuer.example
    jwks: '{JWKS}'
"""


def key_of(text: str) -> object:
    return objects(text)[0].key


@dataclass
class Mesh:
    cp: ControlPlane
    store: MemoryStore
    conns: list[tuple[Connection, asyncio.Queue[object]]]

    def apply(self, text: str) -> None:
        self.store.apply(objects(text))

    def apply_sample(self, path: str) -> None:
        self.store.apply(sample(path))


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    store = MemoryStore()
    options = ControlPlaneOptions(config_dir=tmp_path / "config", state_dir=tmp_path / "state")
    cp = ControlPlane(options, store=store)
    store.subscribe(cp.changed)
    cp.registry.subscribe(cp.registry_changed)
    for w in BOOKINFO:
        cp.registry.register(w)
    cp.rebuild()
    conns = []
    for name, namespace, labels, inbound, port in PROXIES:
        queue: asyncio.Queue[object] = asyncio.Queue()
        conn = cp.ads._open(node(name, namespace, labels, inbound, port), "delta", queue)
        assert conn is not None
        cp.ads.config_for(conn.proxy)
        conns.append((conn, queue))
    return Mesh(cp, store, conns)


def versions(config: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {t: r.version for t, r in config.items()}


def test_a_virtual_service_change_wakes_only_proxies_that_see_its_host(mesh: Mesh) -> None:
    mesh.apply(SIDECAR)  # ratings sees reviews and shop/*; the others see everything
    mesh.cp.rebuild()
    for conn, queue in mesh.conns:
        mesh.cp.ads.config_for(conn.proxy)  # as each stream does once woken
        while not queue.empty():
            queue.get_nowait()
    mesh.apply(DETAILS_VS)
    mesh.cp.rebuild()
    woken = {conn.proxy.workload for conn, queue in mesh.conns if not queue.empty()}
    assert woken == {"productpage-v1", "reviews-v1", "payments-v1", "jason-client"}


def test_an_endpoint_change_takes_the_fast_path_and_rebuilds_one_cluster(mesh: Mesh) -> None:
    ads = mesh.cp.ads
    before = ads.snapshot
    pieces = ads._cache.pieces
    built = (pieces.clusters.misses, pieces.endpoints.misses, pieces.vhosts.misses)
    mesh.cp.registry.register(workload("reviews", "v4", 20009))
    mesh.cp.rebuild()
    after = ads.snapshot
    # Nothing but the endpoints was rebuilt: the config parts are the very same objects.
    assert after.services is before.services
    assert after.virtual_services is before.virtual_services
    assert after.endpoints_of("details.default.svc.cluster.local") is before.endpoints_of(
        "details.default.svc.cluster.local"
    )
    for conn, _ in mesh.conns:
        ads.config_for(conn.proxy)
    clusters, endpoints, vhosts = (
        pieces.clusters.misses - built[0],
        pieces.endpoints.misses - built[1],
        pieces.vhosts.misses - built[2],
    )
    # reviews' clusters and its one EDS cluster, once for every proxy (the same
    # DestinationRule, none, applies in both namespaces); no virtual host was rebuilt.
    assert clusters == 1
    assert endpoints == 1
    assert vhosts == 0


def test_a_snapshot_that_fails_to_build_leaves_proxies_on_the_last_one(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from weft.controlplane import app

    ads = mesh.cp.ads
    before = ads.snapshot
    served = {conn.id: versions(ads.config_for(conn.proxy)) for conn, _ in mesh.conns}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the snapshot build")

    monkeypatch.setattr(app, "build_snapshot", broken)
    mesh.apply(vs_reviews(("v2", 100)))
    mesh.cp.rebuild()  # logged, not raised: the debouncer and the control plane go on
    assert "building it failed" in caplog.text
    assert ads.snapshot is before
    assert {c.id: versions(ads.config_for(c.proxy)) for c, _ in mesh.conns} == served
    monkeypatch.undo()
    mesh.cp.registry.register(workload("reviews", "v4", 20009))  # would take the fast path
    mesh.cp.rebuild()
    # The failed change is not lost: the next snapshot is built from everything.
    assert ads.snapshot.virtual_services_for("reviews.default.svc.cluster.local")


def test_an_object_that_fails_to_generate_is_left_out_and_reported(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weft.xds import builders as pieces

    real = pieces.virtual_host

    def failing(target, domains, vs):  # type: ignore[no-untyped-def]
        if vs is not None and vs.metadata.name == "reviews":
            raise RuntimeError("a bug in route generation")
        return real(target, domains, vs)

    monkeypatch.setattr(pieces, "virtual_host", failing)
    ads = mesh.cp.ads
    mesh.apply(DETAILS_VS)
    mesh.apply(vs_reviews(("v1", 100)))
    mesh.cp.rebuild()
    from envoy.config.route.v3 import route_pb2

    from weft.xds import names, types

    for conn, _ in mesh.conns:
        config = ads.config_for(conn.proxy)  # every proxy is served
        table = route_pb2.RouteConfiguration()
        table.ParseFromString(config[types.ROUTE].items[names.HTTP_PROXY_ROUTE].value)
        vhosts = {v.name: v for v in table.virtual_hosts}
        # The details VirtualService still applies (its 2 s timeout); reviews' is left out
        # and reviews is routed as a service without one.
        details = vhosts["details.default.svc.cluster.local:9080"].routes[0]
        assert details.route.timeout.seconds == 2
        reviews = vhosts["reviews.default.svc.cluster.local:9080"].routes[0]
        assert reviews.name == "default"
    (entry,) = ads.left_out()
    assert (entry.kind, entry.namespace, entry.name) == ("VirtualService", "default", "reviews")
    assert "a bug in route generation" in str(entry)
    labels = {"kind": "VirtualService", "namespace": "default", "name": "reviews"}
    assert mesh.cp.metrics.value("weft_generation_problems", labels) == 1
    # Deleted, it is no longer reported.
    mesh.store.delete([key_of(vs_reviews(("v1", 100)))])
    mesh.cp.rebuild()
    assert ads.left_out() == []
    assert mesh.cp.metrics.value("weft_generation_problems", labels) is None
