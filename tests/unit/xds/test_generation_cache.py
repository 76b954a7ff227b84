"""Cached, scoped, incremental generation serves exactly what generation from scratch would.

A control plane (in memory, no servers) goes through a sequence of changes of every kind; after
each, every connected proxy's config as the server would send it (from the generation cache,
the endpoint fast path and push scope) must equal `generate_all` on a snapshot built from
scratch, and every proxy whose config changed must have been woken for a push. A cache key
missing an input, or a push scope too narrow, fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
from weft.snapshot.build import build_snapshot
from weft.xds.connection import Connection
from weft.xds.generate import generate_all

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


Step = Callable[[Mesh], None]

STEPS: list[tuple[str, Step]] = [
    ("subsets", lambda m: m.apply_sample("networking/destination-rule-all.yaml")),
    ("reviews to v1", lambda m: m.apply(vs_reviews(("v1", 100)))),
    ("reviews 80/20", lambda m: m.apply(vs_reviews(("v1", 80), ("v3", 20)))),
    ("new instance", lambda m: m.cp.registry.register(workload("reviews", "v4", 20009))),
    (
        "new identity",
        lambda m: m.cp.registry.register(workload("reviews", "v5", 20010, account="other")),
    ),
    ("unhealthy", lambda m: m.cp.registry.report("default", "reviews-v2", False)),
    ("instance leaves", lambda m: m.cp.registry.deregister("default", "reviews-v4")),
    ("new service", lambda m: m.cp.registry.register(workload("orders", "v1", 20011))),
    ("sidecar scope", lambda m: m.apply(SIDECAR)),
    ("reviews VS again", lambda m: m.apply(vs_reviews(("v2", 100)))),
    ("VS outside scope", lambda m: m.apply(DETAILS_VS)),
    ("endpoint outside scope", lambda m: m.cp.registry.register(workload("details", "v2", 20012))),
    ("sourceLabels", lambda m: m.apply(SOURCE_LABELS)),
    ("strict mTLS", lambda m: m.apply_sample("security/peer-authentication-strict.yaml")),
    ("port-level DISABLE", lambda m: m.apply(PA_PORT_DISABLE)),
    ("authorization", lambda m: m.apply_sample("security/authorization-policy-reviews.yaml")),
    ("JWT", lambda m: m.apply(REQUEST_AUTHN)),
    ("DestinationRule", lambda m: m.apply(DR_LEAST_CONN)),
    ("wildcard VS", lambda m: m.apply(WILDCARD_VS)),
    ("wildcard VS deleted", lambda m: m.store.delete([key_of(WILDCARD_VS)])),
    ("sidecar deleted", lambda m: m.store.delete([key_of(SIDECAR)])),
    ("service leaves", lambda m: m.cp.registry.deregister("default", "orders-v1")),
    ("entry selecting workloads", lambda m: m.apply(SELECTING_ENTRY)),
    # Its endpoints come from the registry: an instance joining must reach them too.
    (
        "instance an entry selects",
        lambda m: m.cp.registry.register(workload("reviews", "v6", 20013)),
    ),
    ("selected instance leaves", lambda m: m.cp.registry.deregister("default", "reviews-v6")),
    ("VS deleted", lambda m: m.store.delete([key_of(vs_reviews(("v1", 100)))])),
]


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


def test_every_step_serves_what_generation_from_scratch_gives(mesh: Mesh) -> None:
    ads = mesh.cp.ads
    narrow = 0
    for label, step in STEPS:
        before = {conn.id: versions(ads.config_for(conn.proxy)) for conn, _ in mesh.conns}
        for _, queue in mesh.conns:
            while not queue.empty():
                queue.get_nowait()
        step(mesh)
        mesh.cp.rebuild()
        # The reference: a snapshot built from scratch (no fast path, nothing reused).
        scratch = build_snapshot(
            0,
            mesh.store.objects(),
            mesh.cp.registry.services(),
            mesh.cp.registry.endpoints(),
            mesh=mesh.cp.options.mesh,
            jwks=mesh.cp.jwks.documents(),
        )
        woken = 0
        for conn, queue in mesh.conns:
            served = ads.config_for(conn.proxy)
            reference = generate_all(conn.proxy, scratch)
            assert versions(served) == versions(reference), (label, conn.proxy.workload)
            assert {t: dict(r.items) for t, r in served.items()} == {
                t: dict(r.items) for t, r in reference.items()
            }, (label, conn.proxy.workload)
            pushed = not queue.empty()
            woken += pushed
            if versions(served) != before[conn.id]:
                assert pushed, f"{label}: {conn.proxy.workload} changed but was not pushed to"
        narrow += woken < len(mesh.conns)
    # Push scope did spare someone on the narrow steps (VirtualService, endpoints).
    assert narrow >= 3


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
