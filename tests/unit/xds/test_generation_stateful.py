"""Cached, scoped, incremental generation serves exactly what generation from scratch gives,
whatever the sequence of changes.

Hypothesis drives a control plane (in memory, no servers) through random sequences of config
and registry changes of every kind the snapshot is made from, with several proxies of
different namespaces, labels and Sidecars connected. After each change, every proxy's config
as the server would send it (generation cache, endpoint fast path, push scope) must equal
`generate_all` on a snapshot built from scratch, and every proxy whose config changed must
have been woken for a push. A cache key missing an input, a table row missing a source or a
feed, or a push scope too narrow fails here, with the shortest sequence that shows it.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from weft.api.loader import load_yaml
from weft.config.memory import MemoryStore
from weft.controlplane.app import ControlPlane, ControlPlaneOptions
from weft.snapshot.build import build_snapshot
from weft.xds.connection import Connection
from weft.xds.generate import generate_all

from .test_generation_cache import node, workload

SERVICES = ("reviews", "ratings", "details", "orders")
NAMESPACES = ("default", "shop")
VERSIONS = ("v1", "v2", "v3")
# (workload, namespace, labels, inbound port, HTTP proxy port): clients of several views.
PROXIES = [
    ("productpage-v1", "default", {"app": "productpage", "version": "v1"}, 21001, 16001),
    ("reviews-v1", "default", {"app": "reviews", "version": "v1"}, 21003, 16003),
    ("ratings-v1", "default", {"app": "ratings", "version": "v1"}, 21006, 16006),
    ("payments-v1", "shop", {"app": "payments", "version": "v1"}, 21007, 16007),
    ("jason-client", "default", {"app": "client", "user": "jason"}, 21008, 16008),
]

names = st.sampled_from(SERVICES)
namespaces = st.sampled_from(NAMESPACES)
versions = st.sampled_from(VERSIONS)


def _doc(kind: str, group: str, name: str, namespace: str, spec: str) -> str:
    return (
        f"apiVersion: {group}/v1\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )


@st.composite
def virtual_services(draw: st.DrawFn) -> str:
    host = draw(names)
    namespace = draw(namespaces)
    wildcard = draw(st.booleans()) and draw(st.booleans())
    hosts = '["*.svc.cluster.local"]' if wildcard else f"[{host}]"
    subsets = draw(st.lists(versions, min_size=1, max_size=3, unique=True))
    weights = [100 // len(subsets)] * len(subsets)
    weights[0] += 100 - sum(weights)
    routes = "".join(
        f"    - destination: {{host: {host}, subset: {s}}}\n      weight: {w}\n"
        for s, w in zip(subsets, weights, strict=True)
    )
    match = ""
    if draw(st.booleans()):
        match = "  - match: [{sourceLabels: {user: jason}}]\n    fault: {abort: {httpStatus: 500,"
        match += (
            f" percentage: {{value: 100}}}}}}\n    route: [{{destination: {{host: {host}}}}}]\n"
        )
    timeout = draw(st.sampled_from(["", "    timeout: 2s\n"]))
    spec = f"  hosts: {hosts}\n  http:\n{match}  - route:\n{routes}{timeout}"
    name = "wild" if wildcard else host
    return _doc("VirtualService", "networking.istio.io", name, namespace, spec)


CONSISTENT_HASH = "{consistentHash: {httpHeaderName: x-user}}"


@st.composite
def destination_rules(draw: st.DrawFn) -> str:
    host = draw(names)
    namespace = draw(namespaces)
    subsets = draw(st.lists(versions, max_size=3, unique=True))
    lb = draw(st.sampled_from(["{simple: ROUND_ROBIN}", "{simple: RANDOM}", CONSISTENT_HASH]))
    tls = draw(st.sampled_from(["", "ISTIO_MUTUAL", "DISABLE"]))
    spec = f"  host: {host}\n  trafficPolicy:\n    loadBalancer: {lb}\n"
    if tls:
        spec += f"    tls: {{mode: {tls}}}\n"
    if subsets:
        spec += "  subsets:\n" + "".join(
            f"  - name: {v}\n    labels: {{version: {v}}}\n" for v in subsets
        )
    return _doc("DestinationRule", "networking.istio.io", host, namespace, spec)


@st.composite
def sidecars(draw: st.DrawFn) -> str:
    namespace = draw(namespaces)
    app = draw(st.sampled_from(["", "ratings", "payments", "productpage"]))
    hosts = draw(
        st.lists(
            st.sampled_from(["./reviews", "./*", "shop/*", "default/details", "*/ratings"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    selector = f"  workloadSelector: {{labels: {{app: {app}}}}}\n" if app else ""
    spec = f"{selector}  egress: [{{hosts: [{', '.join(repr(h) for h in hosts)}]}}]\n"
    return _doc("Sidecar", "networking.istio.io", app or "default", namespace, spec)


@st.composite
def peer_authentications(draw: st.DrawFn) -> str:
    namespace = draw(st.sampled_from([*NAMESPACES, "istio-system"]))
    mode = draw(st.sampled_from(["STRICT", "PERMISSIVE", "DISABLE"]))
    app = draw(st.sampled_from(["", "ratings", "reviews"]))
    spec = f"  mtls: {{mode: {mode}}}\n"
    if app:
        spec = f"  selector: {{matchLabels: {{app: {app}}}}}\n" + spec
        if draw(st.booleans()):
            spec += "  portLevelMtls: {9080: {mode: DISABLE}}\n"
    return _doc("PeerAuthentication", "security.istio.io", app or "default", namespace, spec)


@st.composite
def authorization_policies(draw: st.DrawFn) -> str:
    namespace = draw(namespaces)
    app = draw(st.sampled_from(["reviews", "ratings", "payments"]))
    action = draw(st.sampled_from(["ALLOW", "DENY", "AUDIT"]))
    principal = draw(st.sampled_from(["bookinfo-productpage", "bookinfo-reviews"]))
    spec = (
        f"  selector: {{matchLabels: {{app: {app}}}}}\n  action: {action}\n  rules:\n"
        f"  - from: [{{source: {{principals: ['cluster.local/ns/default/sa/{principal}']}}}}]\n"
    )
    return _doc("AuthorizationPolicy", "security.istio.io", app, namespace, spec)


@st.composite
def request_authentications(draw: st.DrawFn) -> str:
    namespace = draw(namespaces)
    app = draw(st.sampled_from(["productpage", "payments"]))
    issuer = draw(st.sampled_from(["issuer.example", "other.example"]))
    jwks = '{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}'
    spec = (
        f"  selector: {{matchLabels: {{app: {app}}}}}\n"
        f"  jwtRules:\n  - issuer: {issuer}\n    jwks: '{jwks}'\n"
    )
    return _doc("RequestAuthentication", "security.istio.io", "jwt", namespace, spec)


@st.composite
def service_entries(draw: st.DrawFn) -> str:
    namespace = draw(namespaces)
    selects = draw(st.sampled_from(["", "reviews", "ratings"]))
    spec = (
        "  hosts: [vm.example.internal]\n  location: MESH_INTERNAL\n"
        "  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
    )
    if selects:
        spec += f"  workloadSelector: {{labels: {{app: {selects}}}}}\n"
    else:
        spec += "  endpoints: [{address: 127.0.0.9}]\n"
    return _doc("ServiceEntry", "networking.istio.io", "vm", namespace, spec)


@st.composite
def delegating(draw: st.DrawFn) -> str:
    """A root VirtualService handing /api to a delegate, or the delegate (no hosts) itself."""
    host = draw(names)
    if draw(st.booleans()):
        spec = (
            f"  hosts: [{host}]\n  http:\n"
            "  - match: [{uri: {prefix: /api}}]\n"
            "    delegate: {name: api-routes, namespace: shop}\n"
            f"  - route: [{{destination: {{host: {host}}}}}]\n"
        )
        return _doc("VirtualService", "networking.istio.io", host, "default", spec)
    timeout = draw(st.sampled_from(["3s", "4s"]))
    spec = (
        f"  http:\n  - timeout: {timeout}\n"
        f"    route: [{{destination: {{host: {host}.default.svc.cluster.local}}}}]\n"
    )
    return _doc("VirtualService", "networking.istio.io", "api-routes", "shop", spec)


CONFIG = st.one_of(
    virtual_services(),
    delegating(),
    destination_rules(),
    sidecars(),
    peer_authentications(),
    authorization_policies(),
    request_authentications(),
    service_entries(),
)


class Mesh(RuleBasedStateMachine):
    """A control plane and its connected proxies, changed at random."""

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        root = Path(self._dir.name)
        self.store = MemoryStore()
        options = ControlPlaneOptions(config_dir=root / "config", state_dir=root / "state")
        self.cp = ControlPlane(options, store=self.store)
        self.store.subscribe(self.cp.changed)
        self.cp.registry.subscribe(self.cp.registry_changed)
        self.conns: list[tuple[Connection, asyncio.Queue[object]]] = []
        self.applied: dict[tuple[str, str, str], object] = {}
        self.ports = iter(range(22000, 23000))
        self.before: dict[str, dict[str, str]] = {}

    def teardown(self) -> None:
        self._dir.cleanup()

    @initialize()
    def connect(self) -> None:
        for service in ("reviews", "ratings", "details"):
            self.cp.registry.register(workload(service, "v1", next(self.ports)))
        self.cp.rebuild()
        for name, namespace, labels, inbound, port in PROXIES:
            queue: asyncio.Queue[object] = asyncio.Queue()
            conn = self.cp.ads._open(node(name, namespace, labels, inbound, port), "delta", queue)
            assert conn is not None
            self.conns.append((conn, queue))
        self._settle()

    def _settle(self) -> None:
        """As the server does once woken: each proxy is served, and the wake-ups drained."""
        for conn, queue in self.conns:
            self.before[conn.id] = _versions(self.cp.ads.config_for(conn.proxy))
            while not queue.empty():
                queue.get_nowait()

    def _changed(self) -> None:
        self.cp.rebuild()
        scratch = build_snapshot(
            0,
            self.store.objects(),
            self.cp.registry.services(),
            self.cp.registry.endpoints(),
            mesh=self.cp.options.mesh,
            jwks=self.cp.jwks.documents(),
        )
        for conn, queue in self.conns:
            served = self.cp.ads.config_for(conn.proxy)
            reference = generate_all(conn.proxy, scratch)
            assert {t: dict(r.items) for t, r in served.items()} == {
                t: dict(r.items) for t, r in reference.items()
            }, conn.proxy.workload
            assert _versions(served) == _versions(reference), conn.proxy.workload
            if _versions(served) != self.before[conn.id]:
                assert not queue.empty(), f"{conn.proxy.workload} changed but was not pushed to"
        self._settle()

    @rule(service=names, version=versions, namespace=namespaces, other_account=st.booleans())
    def register(self, service: str, version: str, namespace: str, other_account: bool) -> None:
        account = "other" if other_account else None
        w = workload(service, version, next(self.ports), namespace=namespace, account=account)
        self.cp.registry.register(w)
        self._changed()

    @rule(data=st.data())
    def deregister(self, data: st.DataObject) -> None:
        present = [(w.namespace, w.name) for w in self.cp.registry.workloads()]
        if present:
            namespace, name = data.draw(st.sampled_from(present))
            self.cp.registry.deregister(namespace, name)
        self._changed()

    @rule(data=st.data(), healthy=st.booleans())
    def report(self, data: st.DataObject, healthy: bool) -> None:
        present = [(w.namespace, w.name) for w in self.cp.registry.workloads()]
        if present:
            namespace, name = data.draw(st.sampled_from(present))
            self.cp.registry.report(namespace, name, healthy)
        self._changed()

    @rule(text=CONFIG)
    def apply(self, text: str) -> None:
        (obj,) = load_yaml(text, "<test>")
        self.store.apply([obj])
        self.applied[obj.key] = obj
        self._changed()

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        if self.applied:
            key = data.draw(st.sampled_from(sorted(self.applied, key=str)))
            del self.applied[key]
            self.store.delete([key])
        self._changed()

    @invariant()
    def every_proxy_is_connected(self) -> None:
        assert len(self.cp.ads.connections) == len(self.conns)


def _versions(config: dict[str, object]) -> dict[str, str]:
    return {t: r.version for t, r in config.items()}  # type: ignore[attr-defined]


Mesh.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_cached_generation_is_generation_from_scratch = Mesh.TestCase
