"""What every part of the snapshot is made from and what reads it: the one table.

Everything that decides what a change touches reads these rows and nothing else:

- building (`weft.snapshot.build`): a part is made again only when one of its `sources`
  changed, so a registry-only change rebuilds just the endpoints (the endpoint fast path);
- indexes (`INDEXES`): an index is carried over to the next snapshot while the parts it is
  built from are the same objects;
- push scope (`weft.snapshot.scope`): a change to a part wakes the proxies whose config reads
  it, only those that see the changed hosts when the part says `by_host`, none when no piece
  reads it;
- the generation cache (`weft.xds.pieces`): what a view keeps after a narrow change, and the
  cache keys themselves (`weft.xds.keys`): each key field names the parts it comes from, and
  a test holds the keys and this table to each other.

Adding a kind or an input is one row here (and its field on the snapshot).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from weft.api import VirtualService
from weft.api.hosts import fqdn
from weft.registry.model import Endpoint
from weft.snapshot import derive
from weft.snapshot.indexes import (
    DestinationRuleIndex,
    ServiceIndex,
    SidecarIndex,
    VirtualServiceIndex,
    uses_source_labels,
)
from weft.snapshot.sources import JWKS, MESH, REGISTRY_ENDPOINTS, REGISTRY_SERVICES


class Piece(enum.Enum):
    """The pieces a proxy's config is assembled from (`weft.xds.pieces`)."""

    VISIBLE = "which services a proxy sees"
    CLUSTERS = "one service's outbound clusters"
    ENDPOINTS = "one cluster's endpoints"
    ROUTES = "one virtual host"
    LISTENERS = "one proxy's listeners and inbound clusters"


# Build sources are config kinds, named by their Istio kind ("Sidecar"), and those of
# `weft.snapshot.sources`: the registry's services and endpoints, the mesh config, JWKS.

# The hosts a change between two values of a part touches; None: it may touch any host.
HostsOf = Callable[[Any, Any], "frozenset[str] | None"]


@dataclass(frozen=True)
class Part:
    """One part of the snapshot. `derive` takes the `sources` in their order."""

    name: str
    sources: tuple[str, ...]
    derive: Callable[..., Any]
    feeds: frozenset[Piece]
    by_host: HostsOf | None = None


@dataclass(frozen=True)
class Index:
    """A lookup structure on the snapshot, built by `build` from `reads` in their order."""

    name: str
    reads: tuple[str, ...]
    build: Callable[..., Any]


def _endpoint_hosts(
    before: Mapping[str, tuple[Endpoint, ...]], after: Mapping[str, tuple[Endpoint, ...]]
) -> frozenset[str]:
    return frozenset(
        host for host in before.keys() | after.keys() if before.get(host) is not after.get(host)
    )


def _virtual_service_hosts(
    before: tuple[VirtualService, ...], after: tuple[VirtualService, ...]
) -> frozenset[str] | None:
    old = {id(vs): vs for vs in before}
    new = {id(vs): vs for vs in after}
    hosts: set[str] = set()
    for key in old.keys() ^ new.keys():
        touched = _routed_hosts(old.get(key) or new[key])
        if touched is None:
            return None
        hosts |= touched
    return frozenset(hosts)


def _routed_hosts(vs: VirtualService) -> set[str] | None:
    """The hosts whose sidecar routes a VirtualService can change; None when it may be any
    (a wildcard host), it binds gateways (gateway proxies are not scoped by host) or it has no
    hosts (a delegate: it changes the routes of whichever roots name it)."""
    if any(g != "mesh" for g in vs.spec.gateways) or not vs.spec.hosts:
        return None
    hosts = {fqdn(h, vs.metadata.namespace) for h in vs.spec.hosts}
    return None if any("*" in h for h in hosts) else hosts


# Short names for the table's columns (pieces) and the kinds that make services.
_V, _C, _E, _R, _L = Piece.VISIBLE, Piece.CLUSTERS, Piece.ENDPOINTS, Piece.ROUTES, Piece.LISTENERS
_SE, _WE = "ServiceEntry", "WorkloadEntry"

PARTS: tuple[Part, ...] = (
    Part("services", (_SE, REGISTRY_SERVICES), derive.services, frozenset({_V, _C, _E, _R})),
    Part(
        "endpoints",
        (_SE, _WE, REGISTRY_SERVICES, REGISTRY_ENDPOINTS),
        derive.endpoints,
        frozenset({_C, _E}),  # clusters: SANs and DNS targets come from endpoints
        by_host=_endpoint_hosts,
    ),
    Part(
        "virtual_services",
        ("VirtualService",),
        derive.by_name,
        frozenset({_R}),
        by_host=_virtual_service_hosts,
    ),
    Part("destination_rules", ("DestinationRule",), derive.by_name, frozenset({_C, _E, _R})),
    Part("sidecars", ("Sidecar",), derive.by_name, frozenset({_V})),
    # Validated and kept; no sidecar piece reads them.
    Part("gateways", ("Gateway",), derive.by_name, frozenset()),
    Part("peer_authentications", ("PeerAuthentication",), derive.by_name, frozenset({_E, _L})),
    Part("authorization_policies", ("AuthorizationPolicy",), derive.by_name, frozenset({_L})),
    Part("request_authentications", ("RequestAuthentication",), derive.by_name, frozenset({_L})),
    # Trust domain (clusters, listeners) and root namespace (every lookup with a fallback).
    Part("mesh", (MESH,), derive.same, frozenset({_V, _C, _E, _R, _L})),
    Part("jwks", (JWKS,), derive.frozen, frozenset({_L})),
)

INDEXES: tuple[Index, ...] = (
    Index("vs_index", ("virtual_services",), VirtualServiceIndex.of),
    Index("dr_index", ("destination_rules", "mesh"), DestinationRuleIndex.of),
    Index("sidecar_index", ("sidecars", "mesh"), SidecarIndex.of),
    Index("service_index", ("services",), ServiceIndex.of),
    Index("uses_source_labels", ("virtual_services",), uses_source_labels),
)

PART_NAMES: tuple[str, ...] = tuple(p.name for p in PARTS)
INDEX_READS: Mapping[str, tuple[str, ...]] = {i.name: i.reads for i in INDEXES}


def reads(*pieces: Piece) -> frozenset[str]:
    """The parts any of `pieces` reads."""
    return frozenset(p.name for p in PARTS if p.feeds & set(pieces))


def parts_of(sources_changed: Collection[str]) -> frozenset[str]:
    """The parts made from any of the changed sources."""
    changed = set(sources_changed)
    return frozenset(p.name for p in PARTS if changed.intersection(p.sources))
