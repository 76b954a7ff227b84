"""What a snapshot is built from, by source name (`weft.snapshot.dependencies`), and which
sources differ between two builds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from weft.api import IstioObject, MeshConfig
from weft.registry.model import Endpoint, Service

REGISTRY_SERVICES = "registry.services"
REGISTRY_ENDPOINTS = "registry.endpoints"
MESH = "mesh"
JWKS = "jwks"


@dataclass(frozen=True)
class Sources:
    """Config objects (all of them, and by kind), the registry's services and endpoints, the
    mesh config and the JWKS documents one snapshot was built from."""

    objects: Sequence[IstioObject]
    by_kind: Mapping[str, tuple[IstioObject, ...]]
    registry_services: Mapping[str, Service]
    registry_endpoints: Mapping[str, tuple[Endpoint, ...]]
    mesh: MeshConfig
    jwks: Mapping[str, str]

    @classmethod
    def of(
        cls,
        objects: Sequence[IstioObject],
        services: Mapping[str, Service],
        endpoints: Mapping[str, tuple[Endpoint, ...]],
        mesh: MeshConfig,
        jwks: Mapping[str, str],
        previous: Sources | None = None,
    ) -> Sources:
        if previous is not None and previous.objects is objects:
            by_kind = previous.by_kind  # the store hands out the same tuple while unchanged
        else:
            grouped: dict[str, list[IstioObject]] = {}
            for o in objects:
                grouped.setdefault(o.kind, []).append(o)
            by_kind = MappingProxyType({k: tuple(v) for k, v in grouped.items()})
        return cls(objects, by_kind, services, endpoints, mesh, jwks)

    def get(self, name: str) -> Any:
        if name == REGISTRY_SERVICES:
            return self.registry_services
        if name == REGISTRY_ENDPOINTS:
            return self.registry_endpoints
        if name == MESH:
            return self.mesh
        if name == JWKS:
            return self.jwks
        return self.by_kind.get(name, ())

    def changed_since(self, before: Sources) -> frozenset[str]:
        """The sources that differ from `before`'s. Unchanged objects are the same objects
        (the store and the registry keep them), so comparing is mostly identity checks."""
        changed: set[str] = set()
        if self.objects is not before.objects:
            for kind in self.by_kind.keys() | before.by_kind.keys():
                if self.by_kind.get(kind, ()) != before.by_kind.get(kind, ()):
                    changed.add(kind)
        # The registry hands out the same endpoints mapping while nothing changed: a new one
        # is a change (comparing a thousand hosts' endpoints would cost more than remaking).
        if self.registry_endpoints is not before.registry_endpoints:
            changed.add(REGISTRY_ENDPOINTS)
        for name in (REGISTRY_SERVICES, MESH, JWKS):
            new, old = self.get(name), before.get(name)
            if new is not old and new != old:
                changed.add(name)
        return frozenset(changed)
