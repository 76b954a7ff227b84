"""Run the generators for one proxy: one per xDS type, plus a cache.

What a proxy can reach (outbound clusters, their endpoints, its HTTP routes) depends only on
its view: namespace, labels, whether it holds a certificate, and the snapshot. That part is
built once per view and shared, serialized, by every proxy with the same view; the parts that
depend on the proxy's own ports (inbound clusters, listeners) are built per proxy. Each cache
key lists exactly the inputs of what it caches, so no proxy is ever served another's config.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import any_pb2, message

from weft.errors import WeftError
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot
from weft.xds import names, types
from weft.xds.cds import generate_clusters, inbound_cluster, outbound_clusters
from weft.xds.eds import generate_endpoints
from weft.xds.lds import generate_listeners
from weft.xds.rds import generate_routes


@dataclass(frozen=True)
class Resources:
    """The resources of one type for one proxy, packed, with a content-derived version.

    A content hash makes versions stable across control-plane restarts: a reconnecting
    Envoy that already has this config sees the same version.
    """

    type_url: str
    items: Mapping[str, any_pb2.Any]
    version: str

    @classmethod
    def of(cls, type_url: str, named: list[tuple[str, message.Message]]) -> Resources:
        return cls.of_packed(type_url, pack_all(type_url, named))

    @classmethod
    def of_packed(cls, type_url: str, packed: Mapping[str, any_pb2.Any]) -> Resources:
        digest = hashlib.sha256()
        items: dict[str, any_pb2.Any] = {}
        for name in sorted(packed):
            value = packed[name].value
            digest.update(name.encode())
            digest.update(len(value).to_bytes(8, "big"))
            digest.update(value)
            items[name] = packed[name]
        return cls(type_url, MappingProxyType(items), digest.hexdigest()[:16])


def pack_all(type_url: str, named: list[tuple[str, message.Message]]) -> dict[str, any_pb2.Any]:
    """Serialize once, deterministically, so equal content gives equal versions."""
    return {
        name: any_pb2.Any(type_url=type_url, value=msg.SerializeToString(deterministic=True))
        for name, msg in named
    }


class InconsistentConfig(WeftError):
    """Generated config refers to a resource that was not generated (a bug, never served)."""


ProxyConfig = Mapping[str, Resources]


def _name(msg: message.Message) -> str:
    for field in ("name", "cluster_name"):
        value = getattr(msg, field, None)
        if isinstance(value, str) and value:
            return value
    raise ValueError(f"{type(msg).__name__} has no name")


def generate_all(proxy: Proxy, snap: Snapshot) -> dict[str, Resources]:
    """Every resource the proxy gets, by type. Raises InconsistentConfig before serving a
    snapshot whose references would leave Envoy warming forever."""
    clusters = generate_clusters(proxy, snap)
    eds_names = [c.eds_cluster_config.service_name or c.name for c in clusters if c.type == c.EDS]
    listeners = generate_listeners(proxy, snap)
    route_names = sorted(_rds_names(listeners))
    built: dict[str, list[message.Message]] = {
        types.CLUSTER: list(clusters),
        types.ENDPOINT: list(generate_endpoints(eds_names, snap, proxy.namespace)),
        types.LISTENER: list(listeners),
        types.ROUTE: list(generate_routes(proxy, snap, route_names)) if route_names else [],
    }
    out = {t: Resources.of(t, [(_name(m), m) for m in msgs]) for t, msgs in built.items()}
    check_consistent(out, eds_names, route_names)
    return out


def check_consistent(config: Mapping[str, Resources], eds: list[str], routes: list[str]) -> None:
    """Every EDS name a cluster uses and every route name a listener uses must exist."""
    missing = [n for n in eds if n not in config[types.ENDPOINT].items]
    missing += [n for n in routes if n not in config[types.ROUTE].items]
    if missing:
        raise InconsistentConfig(f"generated config refers to missing resources: {missing}")


def _rds_names(listeners: list[listener_pb2.Listener]) -> set[str]:
    found: set[str] = set()
    for listener in listeners:
        for chain in listener.filter_chains:
            for f in chain.filters:
                if f.typed_config.type_url.endswith("HttpConnectionManager"):
                    manager = hcm.HttpConnectionManager()
                    f.typed_config.Unpack(manager)
                    if manager.HasField("rds"):
                        found.add(manager.rds.route_config_name)
    return found


@dataclass(frozen=True)
class SharedView:
    """What every proxy with one view gets alike: packed outbound clusters, EDS, routes."""

    clusters: Mapping[str, any_pb2.Any]
    eds_names: tuple[str, ...]
    endpoints: Resources
    routes: Resources


def view_key(proxy: Proxy) -> tuple[object, ...]:
    """Every proxy property the shared part reads (Sidecar scope and sourceLabels use the
    labels; mTLS needs a certificate)."""
    return (proxy.namespace, tuple(sorted(proxy.labels.items())), proxy.sds, proxy.kind)


def build_shared(proxy: Proxy, snap: Snapshot) -> SharedView:
    clusters = outbound_clusters(proxy, snap)
    eds_names = tuple(
        c.eds_cluster_config.service_name or c.name for c in clusters if c.type == c.EDS
    )
    endpoints = generate_endpoints(eds_names, snap, proxy.namespace)
    routes = generate_routes(proxy, snap, [names.HTTP_PROXY_ROUTE])
    return SharedView(
        clusters=pack_all(types.CLUSTER, [(c.name, c) for c in clusters]),
        eds_names=eds_names,
        endpoints=Resources.of(types.ENDPOINT, [(e.cluster_name, e) for e in endpoints]),
        routes=Resources.of(types.ROUTE, [(r.name, r) for r in routes]),
    )


def generate_with(shared: SharedView, proxy: Proxy, snap: Snapshot) -> dict[str, Resources]:
    """A proxy's config from its view's shared part plus what is its own."""
    inbound = [inbound_cluster(p) for p in proxy.inbound]
    clusters = {**shared.clusters, **pack_all(types.CLUSTER, [(c.name, c) for c in inbound])}
    listeners = generate_listeners(proxy, snap)
    route_names = sorted(_rds_names(listeners))
    routes = shared.routes
    if set(routes.items) != set(route_names):
        routes = Resources.of_packed(
            types.ROUTE, {n: a for n, a in routes.items.items() if n in route_names}
        )
    out = {
        types.CLUSTER: Resources.of_packed(types.CLUSTER, clusters),
        types.ENDPOINT: shared.endpoints,
        types.LISTENER: Resources.of(types.LISTENER, [(x.name, x) for x in listeners]),
        types.ROUTE: routes,
    }
    check_consistent(out, list(shared.eds_names), route_names)
    return out


class GenerationCache:
    """Shared parts per (view, snapshot version); whole configs per (proxy, snapshot version).

    A new snapshot version drops everything built for older ones.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._shared: dict[tuple[object, ...], SharedView] = {}
        self._entries: OrderedDict[tuple[object, ...], dict[str, Resources]] = OrderedDict()
        self._version = -1
        self.hits = 0
        self.misses = 0

    def get(self, proxy: Proxy, snap: Snapshot) -> dict[str, Resources]:
        if snap.version != self._version:
            self._entries.clear()
            self._shared.clear()
            self._version = snap.version
        key = proxy.config_key()
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        view = view_key(proxy)
        shared = self._shared.get(view)
        if shared is None:
            shared = self._shared[view] = build_shared(proxy, snap)
        built = generate_with(shared, proxy, snap)
        self._entries[key] = built
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return built
