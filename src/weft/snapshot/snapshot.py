"""The immutable, indexed view of the mesh that generators read. A change builds a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Generic, TypeVar

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


@dataclass(frozen=True)
class SidecarIndex:
    """The Sidecars of one namespace: those with a selector, looked up by one of its labels
    (every label of a selector must be on the proxy, so any one of them finds it), and the
    first without a selector (the namespace default)."""

    selected: tuple[tuple[Sidecar, tuple[tuple[str, str], ...]], ...]
    by_label: Mapping[tuple[str, str], tuple[int, ...]]
    match_all: tuple[int, ...]  # selectors with no labels
    default: Sidecar | None


@dataclass(frozen=True)
class ServiceIndex:
    """Services by (namespace, short name), by namespace, and their position in hostname order."""

    by_name: Mapping[tuple[str, str], tuple[Service, ...]]
    by_namespace: Mapping[str, tuple[Service, ...]]
    position: Mapping[str, int]


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

    # Indexes (cached properties) and the fields each is computed from: a snapshot made from
    # another with those fields unchanged (the same objects) takes the index over as it is.
    _INDEX_INPUTS = {
        "_vs_index": ("virtual_services",),
        "_dr_index": ("destination_rules",),
        "sidecar_index": ("sidecars",),
        "service_index": ("services",),
        "uses_source_labels": ("virtual_services",),
        "view_memo": ("services", "sidecars"),
    }

    def with_endpoints(
        self, version: int, endpoints: Mapping[str, tuple[Endpoint, ...]]
    ) -> Snapshot:
        """This snapshot with some hosts' endpoints replaced: the endpoint fast path, which
        builds nothing else (indexes are carried over)."""
        merged = dict(self.endpoints)
        merged.update(endpoints)
        new = replace(self, version=version, endpoints=MappingProxyType(merged))
        self.carry_indexes(new)
        return new

    def carry_indexes(self, new: Snapshot) -> None:
        """Give `new` this snapshot's computed indexes whose inputs are the same objects."""
        for name, inputs in self._INDEX_INPUTS.items():
            if name in self.__dict__ and all(getattr(self, f) is getattr(new, f) for f in inputs):
                new.__dict__[name] = self.__dict__[name]

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
    def sidecar_index(self) -> Mapping[str, SidecarIndex]:
        found: dict[str, tuple[list[Sidecar], list[Sidecar]]] = {}
        for sc in self.sidecars:
            selected, defaults = found.setdefault(sc.metadata.namespace, ([], []))
            (defaults if sc.spec.workload_selector is None else selected).append(sc)
        out: dict[str, SidecarIndex] = {}
        for namespace, (selected, defaults) in found.items():
            entries: list[tuple[Sidecar, tuple[tuple[str, str], ...]]] = []
            by_label: dict[tuple[str, str], list[int]] = {}
            match_all: list[int] = []
            for i, sc in enumerate(selected):
                selector = sc.spec.workload_selector
                wanted = tuple((selector.labels or {}).items()) if selector is not None else ()
                entries.append((sc, wanted))
                if wanted:
                    by_label.setdefault(wanted[0], []).append(i)
                else:
                    match_all.append(i)
            out[namespace] = SidecarIndex(
                tuple(entries),
                {k: tuple(v) for k, v in by_label.items()},
                tuple(match_all),
                defaults[0] if defaults else None,
            )
        return MappingProxyType(out)

    @cached_property
    def service_index(self) -> ServiceIndex:
        by_name: dict[tuple[str, str], list[Service]] = {}
        by_namespace: dict[str, list[Service]] = {}
        for service in self.services.values():
            by_name.setdefault((service.namespace, service.short_name), []).append(service)
            by_namespace.setdefault(service.namespace, []).append(service)
        return ServiceIndex(
            {k: tuple(v) for k, v in by_name.items()},
            {k: tuple(v) for k, v in by_namespace.items()},
            {host: i for i, host in enumerate(self.services)},
        )

    @cached_property
    def uses_source_labels(self) -> bool:
        """Whether any VirtualService matches on the client's labels (then routes depend on
        them)."""
        return any(_matches_source_labels(vs) for vs in self.virtual_services)

    @cached_property
    def view_memo(self) -> dict[object, object]:
        """Memo for what proxy views compute from services and Sidecars (weft.snapshot.view):
        shared by snapshots with the same services and Sidecars."""
        return {}

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


def _matches_source_labels(vs: VirtualService) -> bool:
    spec = vs.spec
    routes: list[Any] = [*spec.http, *spec.tcp, *spec.tls]
    return any(m.source_labels for route in routes for m in route.match or [])
