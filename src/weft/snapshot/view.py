"""What one proxy can see: Sidecar egress scoping of services, as Istio defines it."""

from __future__ import annotations

from weft.api import Sidecar
from weft.api.hosts import host_matches
from weft.registry.model import Service
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot


def sidecar_for(proxy: Proxy, snap: Snapshot) -> Sidecar | None:
    """The Sidecar resource that applies: a selector match in the proxy's namespace first
    (the first by name when several match), then the namespace default (no selector), then
    the root namespace default."""
    index = snap.sidecar_index.get(proxy.namespace)
    if index is not None:
        labels = proxy.labels
        candidates = set(index.match_all)
        for pair in labels.items():
            candidates.update(index.by_label.get(pair, ()))
        for i in sorted(candidates):
            sc, wanted = index.selected[i]
            if all(labels.get(k) == v for k, v in wanted):
                return sc
        if index.default is not None:
            return index.default
    root = snap.sidecar_index.get(snap.root_namespace)
    return root.default if root is not None else None


def _egress_allows(pattern: str, proxy: Proxy, service: Service) -> bool:
    namespace, _, dns = pattern.partition("/")
    if namespace == "~":
        return False
    if namespace == ".":
        namespace = proxy.namespace
    if namespace != "*" and namespace != service.namespace:
        return False
    if dns == "*":
        return True
    # A short name in an egress host is qualified by the namespace part of the pattern.
    if "." not in dns and "*" not in dns:
        return dns == service.short_name
    return host_matches(dns, service.hostname)


def visible_services(proxy: Proxy, snap: Snapshot) -> list[Service]:
    """Services the proxy may reach, in the snapshot's (hostname) order, the order generators
    emit them in. What a Sidecar allows depends on the Sidecar and the proxy's namespace
    only, so it is computed once per pair and snapshot services and Sidecars."""
    sidecar = sidecar_for(proxy, snap)
    if sidecar is None or not sidecar.spec.egress:
        return list(snap.services.values())
    key = ("visible", id(sidecar), proxy.namespace)
    found = snap.view_memo.get(key)
    if found is None:
        # The memo holds the Sidecar too, so its id cannot be reused while the entry lives.
        found = snap.view_memo[key] = (sidecar, _scoped(sidecar, proxy, snap))
    return list(found[1])  # type: ignore[index]


def _scoped(sidecar: Sidecar, proxy: Proxy, snap: Snapshot) -> tuple[Service, ...]:
    """Look egress hosts up in the snapshot's service index instead of testing every
    service against every pattern (which is quadratic in a scoped mesh)."""
    index = snap.service_index
    found: dict[str, Service] = {}
    for egress in sidecar.spec.egress or []:
        for pattern in egress.hosts:
            namespace, _, dns = pattern.partition("/")
            if namespace == "~":
                continue
            if namespace == ".":
                namespace = proxy.namespace
            pool: tuple[Service, ...] | list[Service]
            if namespace != "*" and dns == "*":
                pool = index.by_namespace.get(namespace, ())
            elif namespace != "*" and "." not in dns and "*" not in dns:
                pool = index.by_name.get((namespace, dns), ())
            else:
                pool = [s for s in snap.services.values() if _egress_allows(pattern, proxy, s)]
            for service in pool:
                found[service.hostname] = service
    return tuple(sorted(found.values(), key=lambda s: index.position[s.hostname]))
