"""The immutable, indexed view of the mesh that generators read. A change builds a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Generic, TypeVar

from weft.api import (
    AuthorizationPolicy,
    DestinationRule,
    Gateway,
    MeshConfig,
    PeerAuthentication,
    RequestAuthentication,
    Sidecar,
    VirtualService,
)
from weft.api.hosts import fqdn, host_matches
from weft.registry.model import Endpoint, Service

_T = TypeVar("_T")


@dataclass(frozen=True)
class _HostIndex(Generic[_T]):
    exact: Mapping[str, tuple[_T, ...]]
    wildcards: tuple[tuple[str, _T], ...]


@dataclass(frozen=True)
class _DrIndex:
    exact: Mapping[tuple[str, str], DestinationRule]
    wildcards: Mapping[str, tuple[tuple[str, DestinationRule], ...]]


_EMPTY: Mapping[str, tuple[Endpoint, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    """Services, endpoints and routing config at one instant. Never mutated after build."""

    version: int = 0
    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))
    endpoints: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=lambda: _EMPTY)
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    root_namespace: str = "istio-system"
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    request_authentications: tuple[RequestAuthentication, ...] = ()
    mesh: MeshConfig = field(default_factory=MeshConfig)
    # JWKS documents the control plane fetched, by jwksUri (RequestAuthentication).
    jwks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def service(self, hostname: str) -> Service | None:
        return self.services.get(hostname)

    def endpoints_of(self, hostname: str) -> tuple[Endpoint, ...]:
        return self.endpoints.get(hostname, ())

    def virtual_services_for(self, hostname: str, gateway: str = "mesh") -> list[VirtualService]:
        """VirtualServices bound to `gateway` whose hosts cover `hostname`, oldest first."""
        index = self._vs_index
        positions = set(index.exact.get(hostname, ()))
        positions.update(i for host, i in index.wildcards if host_matches(host, hostname))
        found = [self.virtual_services[i] for i in sorted(positions)]
        return [vs for vs in found if gateway in (vs.spec.gateways or ["mesh"])]

    def destination_rule_for(self, hostname: str, client_namespace: str) -> DestinationRule | None:
        """Istio's lookup order: the client's namespace, then the service's, then the root's.

        Within one namespace an exact host beats a wildcard, and a longer wildcard a shorter.
        """
        service = self.services.get(hostname)
        order = [client_namespace]
        if service is not None:
            order.append(service.namespace)
        order.append(self.root_namespace)
        index = self._dr_index
        for namespace in dict.fromkeys(order):
            exact = index.exact.get((namespace, hostname))
            if exact is not None:
                return exact
            best: DestinationRule | None = None
            best_len = -1
            for host, dr in index.wildcards.get(namespace, ()):
                if len(host) > best_len and host_matches(host, hostname):
                    best, best_len = dr, len(host)
            if best is not None:
                return best
        return None

    @cached_property
    def sidecars_by_namespace(self) -> Mapping[str, tuple[Sidecar, ...]]:
        found: dict[str, list[Sidecar]] = {}
        for sc in self.sidecars:
            found.setdefault(sc.metadata.namespace, []).append(sc)
        return {ns: tuple(scs) for ns, scs in found.items()}

    # Lookups above run once per service per proxy: index the rules by host once per snapshot.
    @cached_property
    def _vs_index(self) -> _HostIndex[int]:
        exact: dict[str, list[int]] = {}
        wildcards: list[tuple[str, int]] = []
        for i, vs in enumerate(self.virtual_services):
            for host in vs.spec.hosts:
                resolved = fqdn(host, vs.metadata.namespace)
                if "*" in resolved:
                    wildcards.append((resolved, i))
                else:
                    exact.setdefault(resolved, []).append(i)
        return _HostIndex({h: tuple(v) for h, v in exact.items()}, tuple(wildcards))

    @cached_property
    def _dr_index(self) -> _DrIndex:
        exact: dict[tuple[str, str], DestinationRule] = {}
        wildcards: dict[str, list[tuple[str, DestinationRule]]] = {}
        for dr in self.destination_rules:
            namespace = dr.metadata.namespace
            host = fqdn(dr.spec.host, namespace)
            if "*" in host:
                wildcards.setdefault(namespace, []).append((host, dr))
            else:
                exact.setdefault((namespace, host), dr)  # the first by name wins, as before
        return _DrIndex(exact, {ns: tuple(v) for ns, v in wildcards.items()})
