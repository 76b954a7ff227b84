"""Run the generators for one proxy: one per xDS type, registered in a table, plus a cache.

The cache key is exactly a generator's inputs (the proxy's config key and the snapshot
version), so proxies that look alike share one build and one serialization, and no proxy can
ever be served another's config.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
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
from weft.xds import types
from weft.xds.cds import generate_clusters
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
        digest = hashlib.sha256()
        packed: dict[str, any_pb2.Any] = {}
        for name, msg in sorted(named, key=lambda item: item[0]):
            value = msg.SerializeToString(deterministic=True)
            digest.update(name.encode())
            digest.update(len(value).to_bytes(8, "big"))
            digest.update(value)
            packed[name] = any_pb2.Any(type_url=type_url, value=value)
        return cls(type_url, MappingProxyType(packed), digest.hexdigest()[:16])


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


class GenerationCache:
    """Generated config per (proxy config key, snapshot version); old versions are dropped."""

    def __init__(
        self,
        build: Callable[[Proxy, Snapshot], dict[str, Resources]] = generate_all,
        max_entries: int = 4096,
    ) -> None:
        self._build = build
        self._max = max_entries
        self._entries: OrderedDict[tuple[object, ...], dict[str, Resources]] = OrderedDict()
        self._version = -1
        self.hits = 0
        self.misses = 0

    def get(self, proxy: Proxy, snap: Snapshot) -> dict[str, Resources]:
        if snap.version != self._version:
            self._entries.clear()
            self._version = snap.version
        key = proxy.config_key()
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        built = self._build(proxy, snap)
        self._entries[key] = built
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return built
