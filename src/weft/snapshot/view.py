"""What one proxy can see: Sidecar egress scoping of services, as Istio defines it."""

from __future__ import annotations

from collections.abc import Mapping

from weft.api import Sidecar
from weft.api.hosts import host_matches
from weft.registry.model import Service
from weft.snapshot.indexes import ServiceIndex
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot


def sidecar_for(proxy: Proxy, snap: Snapshot) -> Sidecar | None:
    """The Sidecar resource that applies: a selector match in the proxy's namespace first
    (the first by name when several match), then the namespace default (no selector), then
    the root namespace default."""
    return snap.sidecar_index.for_workload(proxy.namespace, proxy.labels)


def visible_services(proxy: Proxy, snap: Snapshot) -> list[Service]:
    """Services the proxy may reach, in the snapshot's (hostname) order, the order generators
    emit them in."""
    sidecar = sidecar_for(proxy, snap)
    return list(scoped_services(sidecar, proxy.namespace, snap.services, snap.service_index))


def scoped_services(
    sidecar: Sidecar | None,
    namespace: str,
    services: Mapping[str, Service],
    index: ServiceIndex,
) -> tuple[Service, ...]:
    """What a Sidecar lets a proxy of `namespace` reach; everything without egress. Egress
    hosts are looked up in the service index instead of testing every service against every
    pattern (which is quadratic in a scoped mesh)."""
    if sidecar is None or not sidecar.spec.egress:
        return tuple(services.values())
    found: dict[str, Service] = {}
    for egress in sidecar.spec.egress or []:
        for pattern in egress.hosts:
            ns, _, dns = pattern.partition("/")
            if ns == "~":
                continue
            if ns == ".":
                ns = namespace
            pool: tuple[Service, ...] | list[Service]
            if ns != "*" and dns == "*":
                pool = index.by_namespace.get(ns, ())
            elif ns != "*" and "." not in dns and "*" not in dns:
                pool = index.by_name.get((ns, dns), ())
            else:
                pool = [s for s in services.values() if _egress_allows(ns, dns, s)]
            for service in pool:
                found[service.hostname] = service
    return tuple(sorted(found.values(), key=lambda s: index.position[s.hostname]))


def _egress_allows(namespace: str, dns: str, service: Service) -> bool:
    if namespace != "*" and namespace != service.namespace:
        return False
    if dns == "*":
        return True
    # A short name in an egress host is qualified by the namespace part of the pattern.
    if "." not in dns and "*" not in dns:
        return dns == service.short_name
    return host_matches(dns, service.hostname)
