"""The snapshot's indexes: lookups by host, namespace and label, each built from the parts
its row in `weft.snapshot.dependencies.INDEXES` names, and from nothing else.

Their maps are plain dicts, read through `Mapping` and never changed once built (a read-only
proxy costs on every lookup, and lookups run for every piece of every proxy's config)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from weft.api import DestinationRule, MeshConfig, Sidecar, VirtualService
from weft.api.hosts import fqdn, host_matches
from weft.api.httproute import HTTPRoute
from weft.api.virtualservice import TCPRoute, TLSRoute
from weft.registry.model import Service


@dataclass(frozen=True)
class VirtualServiceIndex:
    """VirtualServices by the hosts they name: exact hosts, then wildcard patterns."""

    rules: tuple[VirtualService, ...]
    exact: Mapping[str, tuple[int, ...]]
    wildcards: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, virtual_services: tuple[VirtualService, ...]) -> VirtualServiceIndex:
        exact: dict[str, list[int]] = {}
        wildcards: list[tuple[str, int]] = []
        for i, vs in enumerate(virtual_services):
            for host in vs.spec.hosts:
                resolved = fqdn(host, vs.metadata.namespace)
                if "*" in resolved:
                    wildcards.append((resolved, i))
                else:
                    exact.setdefault(resolved, []).append(i)
        return cls(
            virtual_services,
            {h: tuple(v) for h, v in exact.items()},
            tuple(wildcards),
        )

    def bound_to(self, hostname: str, gateway: str = "mesh") -> list[VirtualService]:
        """VirtualServices bound to `gateway` whose hosts cover `hostname`, oldest first."""
        positions = set(self.exact.get(hostname, ()))
        positions.update(i for host, i in self.wildcards if host_matches(host, hostname))
        found = [self.rules[i] for i in sorted(positions)]
        return [vs for vs in found if gateway in (vs.spec.gateways or ["mesh"])]


@dataclass(frozen=True)
class DestinationRuleIndex:
    """DestinationRules by namespace and host, with the mesh's root namespace as last resort."""

    exact: Mapping[tuple[str, str], DestinationRule]
    wildcards: Mapping[str, tuple[tuple[str, DestinationRule], ...]]
    root_namespace: str

    @classmethod
    def of(
        cls, destination_rules: tuple[DestinationRule, ...], mesh: MeshConfig
    ) -> DestinationRuleIndex:
        exact: dict[tuple[str, str], DestinationRule] = {}
        wildcards: dict[str, list[tuple[str, DestinationRule]]] = {}
        for dr in destination_rules:
            namespace = dr.metadata.namespace
            host = fqdn(dr.spec.host, namespace)
            if "*" in host:
                wildcards.setdefault(namespace, []).append((host, dr))
            else:
                exact.setdefault((namespace, host), dr)  # the first by name wins
        return cls(
            exact,
            {ns: tuple(v) for ns, v in wildcards.items()},
            mesh.root_namespace,
        )

    def lookup(
        self, hostname: str, client_namespace: str, service_namespace: str | None
    ) -> DestinationRule | None:
        """Istio's lookup order: the client's namespace, then the service's, then the root's.

        Within one namespace an exact host beats a wildcard, and a longer wildcard a shorter.
        """
        order = [client_namespace]
        if service_namespace is not None:
            order.append(service_namespace)
        order.append(self.root_namespace)
        for namespace in dict.fromkeys(order):
            exact = self.exact.get((namespace, hostname))
            if exact is not None:
                return exact
            best: DestinationRule | None = None
            best_len = -1
            for host, dr in self.wildcards.get(namespace, ()):
                if len(host) > best_len and host_matches(host, hostname):
                    best, best_len = dr, len(host)
            if best is not None:
                return best
        return None


@dataclass(frozen=True)
class NamespaceSidecars:
    """The Sidecars of one namespace: those with a selector, looked up by one of its labels
    (every label of a selector must be on the proxy, so any one of them finds it), and the
    first without a selector (the namespace default)."""

    selected: tuple[tuple[Sidecar, tuple[tuple[str, str], ...]], ...]
    by_label: Mapping[tuple[str, str], tuple[int, ...]]
    match_all: tuple[int, ...]  # selectors with no labels
    default: Sidecar | None


@dataclass(frozen=True)
class SidecarIndex:
    """Sidecars by namespace, and the root namespace whose default applies mesh-wide."""

    namespaces: Mapping[str, NamespaceSidecars]
    root_namespace: str

    @classmethod
    def of(cls, sidecars: tuple[Sidecar, ...], mesh: MeshConfig) -> SidecarIndex:
        found: dict[str, tuple[list[Sidecar], list[Sidecar]]] = {}
        for sc in sidecars:
            selected, defaults = found.setdefault(sc.metadata.namespace, ([], []))
            (defaults if sc.spec.workload_selector is None else selected).append(sc)
        out: dict[str, NamespaceSidecars] = {}
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
            out[namespace] = NamespaceSidecars(
                tuple(entries),
                {k: tuple(v) for k, v in by_label.items()},
                tuple(match_all),
                defaults[0] if defaults else None,
            )
        return cls(out, mesh.root_namespace)

    def for_workload(self, namespace: str, labels: Mapping[str, str]) -> Sidecar | None:
        """The Sidecar that applies: a selector match in the workload's namespace first (the
        first by name when several match), then the namespace default, then the root
        namespace's default."""
        index = self.namespaces.get(namespace)
        if index is not None:
            candidates = set(index.match_all)
            for pair in labels.items():
                candidates.update(index.by_label.get(pair, ()))
            for i in sorted(candidates):
                sc, wanted = index.selected[i]
                if all(labels.get(k) == v for k, v in wanted):
                    return sc
            if index.default is not None:
                return index.default
        root = self.namespaces.get(self.root_namespace)
        return root.default if root is not None else None


@dataclass(frozen=True)
class ServiceIndex:
    """Services by (namespace, short name), by namespace, and their position in hostname order."""

    by_name: Mapping[tuple[str, str], tuple[Service, ...]]
    by_namespace: Mapping[str, tuple[Service, ...]]
    position: Mapping[str, int]

    @classmethod
    def of(cls, services: Mapping[str, Service]) -> ServiceIndex:
        by_name: dict[tuple[str, str], list[Service]] = {}
        by_namespace: dict[str, list[Service]] = {}
        for service in services.values():
            by_name.setdefault((service.namespace, service.short_name), []).append(service)
            by_namespace.setdefault(service.namespace, []).append(service)
        return cls(
            {k: tuple(v) for k, v in by_name.items()},
            {k: tuple(v) for k, v in by_namespace.items()},
            {host: i for i, host in enumerate(services)},
        )


def uses_source_labels(virtual_services: tuple[VirtualService, ...]) -> bool:
    """Whether any VirtualService matches on the client's labels (then routes depend on them)."""
    return any(_matches_source_labels(vs) for vs in virtual_services)


def _matches_source_labels(vs: VirtualService) -> bool:
    spec = vs.spec
    routes: Sequence[HTTPRoute | TCPRoute | TLSRoute] = [*spec.http, *spec.tcp, *spec.tls]
    return any(m.source_labels for route in routes for m in route.match or [])
