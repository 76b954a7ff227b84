"""Build a Snapshot from config objects and discovered services. Pure: same inputs, same output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from weft.api import IstioObject, MeshConfig
from weft.registry.model import Endpoint, Service
from weft.snapshot.dependencies import PARTS, parts_of
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.sources import Sources


def build_snapshot(
    version: int,
    objects: Sequence[IstioObject],
    services: Mapping[str, Service],
    endpoints: Mapping[str, tuple[Endpoint, ...]],
    root_namespace: str | None = None,
    *,
    mesh: MeshConfig | None = None,
    jwks: Mapping[str, str] | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Merge discovered services with ServiceEntries and index the routing and security config.

    The root namespace is `root_namespace` when given, else the mesh config's (istio-system).
    With `previous`, only the parts whose sources changed are made again (a registry-only
    change remakes the endpoints alone: the endpoint fast path), every part equal to the
    previous snapshot's is that very object (each host's endpoints too), and so are the
    indexes built from unchanged parts: generation caches keyed by the identity of their
    inputs then hit for everything the change did not touch.
    """
    mesh = mesh if mesh is not None else MeshConfig()
    if root_namespace is not None and root_namespace != mesh.root_namespace:
        mesh = mesh.model_copy(update={"root_namespace": root_namespace})
    before = previous.sources if previous is not None else None
    sources = Sources.of(objects, services, endpoints, mesh, dict(jwks or {}), before)
    remake = None if before is None else parts_of(sources.changed_since(before))
    parts: dict[str, Any] = {}
    for part in PARTS:
        if previous is not None and remake is not None and part.name not in remake:
            parts[part.name] = getattr(previous, part.name)
            continue
        made = part.derive(*(sources.get(s) for s in part.sources))
        parts[part.name] = made if previous is None else _same_if_equal(previous, part.name, made)
    return Snapshot(version=version, sources=sources, carry=previous, **parts)


def _same_if_equal(previous: Snapshot, name: str, made: Any) -> Any:
    """`made`, or the previous snapshot's object when equal; endpoints host by host."""
    old = getattr(previous, name)
    if name != "endpoints":
        return old if old is not made and old == made else made
    merged = {
        host: prior
        if (prior := old.get(host)) is eps or (prior is not None and prior == eps)
        else eps
        for host, eps in made.items()
    }
    if merged.keys() == old.keys() and all(eps is old[host] for host, eps in merged.items()):
        return old
    return MappingProxyType(merged)
