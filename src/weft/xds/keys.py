"""Cache keys of the generation pieces: Annotated[each key is its builder's only parameter, so a
builder cannot read an input its key does not hold, and a cached piece is never served for
inputs other than those it was built from.

Large inputs (a DestinationRule, a host's endpoints, the tuple of PeerAuthentications) are
held as `Same`: compared by identity, which for the snapshot's immutable parts is equality
(a new snapshot keeps each unchanged part as the same object). Each field that comes from
the snapshot names the parts it is taken from (`Reads`); a test holds these to the table in
`weft.snapshot.dependencies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Generic, TypeVar, get_args, get_origin, get_type_hints

from weft.api import (
    AuthorizationPolicy,
    DestinationRule,
    MeshConfig,
    PeerAuthentication,
    RequestAuthentication,
    Sidecar,
    VirtualService,
)
from weft.registry.model import Endpoint, Service
from weft.snapshot.dependencies import INDEX_READS, Piece
from weft.snapshot.indexes import DestinationRuleIndex, ServiceIndex
from weft.snapshot.proxy import ProxyShape

_T = TypeVar("_T")
_K = TypeVar("_K", bound=object)


class Same(Generic[_T]):
    """An input compared by identity. It holds the object, so the id stays the object's own
    while the key lives."""

    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and other.value is self.value

    def __repr__(self) -> str:
        return f"Same({type(self.value).__name__}@{id(self.value):x})"


PeerAuthentications = Same[tuple[PeerAuthentication, ...]]


def identity_keyed(cls: type[_K]) -> type[_K]:
    """Give a key dataclass a hash and an equality that compare its `Same` fields by the
    identity of what they hold, in one call each (keys are made and looked up for every
    piece of every proxy's config, so nested calls per field would cost more than the
    lookup)."""
    hints = get_type_hints(cls, include_extras=True)
    terms = []
    for f in fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        base = get_args(hint)[0] if get_origin(hint) is Annotated else hint
        if get_origin(base) is Same:
            terms.append(
                (f"id(self.{f.name}.value)", f"self.{f.name}.value is other.{f.name}.value")
            )
        else:
            terms.append((f"self.{f.name}", f"self.{f.name} == other.{f.name}"))
    source = (
        "def __hash__(self):\n"
        f"    return hash(({', '.join(h for h, _ in terms)},))\n"
        "def __eq__(self, other):\n"
        "    return self is other or (other.__class__ is self.__class__"
        + "".join(f" and {e}" for _, e in terms)
        + ")\n"
    )
    made: dict[str, object] = {}
    exec(source, {}, made)  # generated from the field list, as dataclasses does
    type.__setattr__(cls, "__hash__", made["__hash__"])
    type.__setattr__(cls, "__eq__", made["__eq__"])
    return cls


@dataclass(frozen=True)
class Reads:
    """Marks a key field as taken from these snapshot parts (or indexes, by their name)."""

    parts: tuple[str, ...]

    def __init__(self, *parts: str) -> None:
        object.__setattr__(self, "parts", parts)


@identity_keyed
@dataclass(frozen=True, slots=True)
class VisibleKey:
    """Which services a proxy sees: what its Sidecar's egress allows from its namespace."""

    sidecar: Annotated[Same[Sidecar | None], Reads("sidecar_index")]
    namespace: str
    services: Annotated[Same[Mapping[str, Service]], Reads("services")]
    index: Annotated[Same[ServiceIndex], Reads("service_index")]


@identity_keyed
@dataclass(frozen=True, slots=True)
class ClustersKey:
    """One service's outbound clusters (each port, each subset) for one kind of client."""

    service: Annotated[Same[Service], Reads("services")]
    rule: Annotated[Same[DestinationRule | None], Reads("dr_index", "services")]
    endpoints: Annotated[Same[tuple[Endpoint, ...]], Reads("endpoints")]
    trust_domain: Annotated[str, Reads("mesh")]
    has_certs: bool


@identity_keyed
@dataclass(frozen=True, slots=True)
class EndpointsKey:
    """One EDS cluster's load assignment."""

    cluster: str
    rule: Annotated[Same[DestinationRule | None], Reads("dr_index", "services")]
    endpoints: Annotated[Same[tuple[Endpoint, ...]], Reads("endpoints")]
    peer_authentications: Annotated[PeerAuthentications, Reads("peer_authentications")]
    root_namespace: Annotated[str, Reads("mesh")]


@identity_keyed
@dataclass(frozen=True, slots=True)
class VirtualHostKey:
    """One service port's virtual host on the outbound HTTP proxy of one kind of client."""

    service: Annotated[Same[Service], Reads("services")]
    port: int
    domains: tuple[str, ...]
    client_namespace: str
    # The client's labels, only when some VirtualService matches on sourceLabels.
    client_labels: Annotated[tuple[tuple[str, str], ...], Reads("uses_source_labels")]
    virtual_service: Annotated[Same[VirtualService | None], Reads("vs_index")]
    # The delegate VirtualServices it names that exist (a delegate has no hosts).
    delegates: Annotated[tuple[Same[VirtualService], ...], Reads("virtual_services")]
    services: Annotated[Same[Mapping[str, Service]], Reads("services")]
    rules: Annotated[Same[DestinationRuleIndex], Reads("dr_index")]


@identity_keyed
@dataclass(frozen=True, slots=True)
class ListenersKey:
    """One proxy's listeners and inbound clusters, from its shape and the security policy."""

    proxy: ProxyShape
    peer_authentications: Annotated[PeerAuthentications, Reads("peer_authentications")]
    authorization_policies: Annotated[
        Same[tuple[AuthorizationPolicy, ...]], Reads("authorization_policies")
    ]
    request_authentications: Annotated[
        Same[tuple[RequestAuthentication, ...]], Reads("request_authentications")
    ]
    jwks: Annotated[Same[Mapping[str, str]], Reads("jwks")]
    mesh: Annotated[Same[MeshConfig], Reads("mesh")]


KEYS: Mapping[Piece, type] = {
    Piece.VISIBLE: VisibleKey,
    Piece.CLUSTERS: ClustersKey,
    Piece.ENDPOINTS: EndpointsKey,
    Piece.ROUTES: VirtualHostKey,
    Piece.LISTENERS: ListenersKey,
}


def parts_read(key_type: type) -> frozenset[str]:
    """The snapshot parts a key's fields are taken from, indexes expanded to their parts."""
    found: set[str] = set()
    for hint in get_type_hints(key_type, include_extras=True).values():
        for mark in getattr(hint, "__metadata__", ()):
            if isinstance(mark, Reads):
                for name in mark.parts:
                    found.update(INDEX_READS.get(name, (name,)))
    return frozenset(found)
