"""The immutable, indexed view of the mesh that generators read. A change builds a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

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
        found: list[VirtualService] = []
        for vs in self.virtual_services:
            gateways = vs.spec.gateways or ["mesh"]
            if gateway not in gateways:
                continue
            ns = vs.metadata.namespace
            if any(host_matches(fqdn(h, ns), hostname) for h in vs.spec.hosts):
                found.append(vs)
        return found

    def destination_rule_for(self, hostname: str, client_namespace: str) -> DestinationRule | None:
        """Istio's lookup order: the client's namespace, then the service's, then the root's.

        Within one namespace an exact host beats a wildcard.
        """
        service = self.services.get(hostname)
        order = [client_namespace]
        if service is not None:
            order.append(service.namespace)
        order.append(self.root_namespace)
        for namespace in dict.fromkeys(order):
            best: DestinationRule | None = None
            best_len = -1
            for dr in self.destination_rules:
                if dr.metadata.namespace != namespace:
                    continue
                host = fqdn(dr.spec.host, namespace)
                if host == hostname:
                    return dr
                # Among wildcards the most specific (longest) host wins.
                if len(host) > best_len and host_matches(host, hostname):
                    best, best_len = dr, len(host)
            if best is not None:
                return best
        return None
