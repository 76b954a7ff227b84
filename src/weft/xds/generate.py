"""Run the generators for one proxy: one per xDS type, packed, with content-derived versions.

`generate_all` builds a proxy's whole config from scratch. The control plane serves configs
from `weft.xds.cache.GenerationCache` instead, which assembles the same config from pieces
(`weft.xds.pieces`) shared between proxies and between snapshots; tests compare the two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import any_pb2, message

from weft.errors import WeftError
from weft.snapshot.policies import SecurityPolicies
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
    return {name: pack_one(type_url, msg) for name, msg in named}


def pack_one(type_url: str, msg: message.Message) -> any_pb2.Any:
    return any_pb2.Any(type_url=type_url, value=msg.SerializeToString(deterministic=True))


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
    listeners = generate_listeners(proxy.shape, SecurityPolicies.of(snap))
    route_names = sorted(rds_names(listeners))
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


def rds_names(listeners: list[listener_pb2.Listener]) -> set[str]:
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
