"""What one proxy can see: Sidecar egress scoping of services, as Istio defines it."""

from __future__ import annotations

from weft.api import Sidecar
from weft.api.hosts import host_matches
from weft.registry.model import Service
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot


def sidecar_for(proxy: Proxy, snap: Snapshot) -> Sidecar | None:
    """The Sidecar resource that applies: a selector match in the proxy's namespace first,
    then the namespace default (no selector), then the root namespace default."""
    in_ns = snap.sidecars_by_namespace.get(proxy.namespace, ())
    for sc in in_ns:
        selector = sc.spec.workload_selector
        if selector is not None and all(
            proxy.labels.get(k) == v for k, v in (selector.labels or {}).items()
        ):
            return sc
    for sc in in_ns:
        if sc.spec.workload_selector is None:
            return sc
    for sc in snap.sidecars_by_namespace.get(snap.root_namespace, ()):
        if sc.spec.workload_selector is None:
            return sc
    return None


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
    """Services the proxy may reach, by hostname order (the order generators emit them in)."""
    sidecar = sidecar_for(proxy, snap)
    services = list(snap.services.values())
    if sidecar is None or not sidecar.spec.egress:
        return services
    patterns = [h for egress in sidecar.spec.egress for h in egress.hosts]
    # "ns/name" and "./name" are most egress hosts: look them up instead of testing each
    # service against each pattern (which is quadratic in a scoped mesh).
    named: set[tuple[str, str]] = set()
    others: list[str] = []
    for pattern in patterns:
        namespace, _, dns = pattern.partition("/")
        if namespace not in ("*", "~") and "." not in dns and "*" not in dns:
            named.add((proxy.namespace if namespace == "." else namespace, dns))
        else:
            others.append(pattern)
    return [
        s
        for s in services
        if (s.namespace, s.short_name) in named or any(_egress_allows(p, proxy, s) for p in others)
    ]
