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
    in_ns = [s for s in snap.sidecars if s.metadata.namespace == proxy.namespace]
    for sc in in_ns:
        selector = sc.spec.workload_selector
        if selector is not None and all(
            proxy.labels.get(k) == v for k, v in (selector.labels or {}).items()
        ):
            return sc
    for sc in in_ns:
        if sc.spec.workload_selector is None:
            return sc
    for sc in snap.sidecars:
        if sc.metadata.namespace == snap.root_namespace and sc.spec.workload_selector is None:
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
    return [s for s in services if any(_egress_allows(p, proxy, s) for p in patterns)]
