"""RDS: the outbound HTTP proxy's route table, one virtual host per service and port."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from weft.api import VirtualService
from weft.registry.model import Service
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.view import visible_services
from weft.xds import names
from weft.xds.delegation import delegates_of
from weft.xds.protos import boolean
from weft.xds.routes import RouteTarget, default_route, virtual_service_routes

NOT_IN_MESH_BODY = (
    "weft: no service in the mesh registry matches this host and port; "
    "check the Host header (e.g. reviews:9080) and `weft proxy-config routes`\n"
)


def generate_routes(
    proxy: Proxy, snap: Snapshot, requested: Iterable[str] = ()
) -> list[route_pb2.RouteConfiguration]:
    """Route configurations by name; the sidecar has one, the HTTP proxy's."""
    wanted = set(requested) or {names.HTTP_PROXY_ROUTE}
    out: list[route_pb2.RouteConfiguration] = []
    if names.HTTP_PROXY_ROUTE in wanted:
        out.append(http_proxy_routes(proxy, snap))
    return out


def http_proxy_routes(proxy: Proxy, snap: Snapshot) -> route_pb2.RouteConfiguration:
    config = route_pb2.RouteConfiguration(
        name=names.HTTP_PROXY_ROUTE, validate_clusters=boolean(False)
    )
    for service, port, domains in route_plan(visible_services(proxy, snap), proxy.namespace):
        bound = snap.virtual_services_for(service.hostname)
        root = bound[0] if bound else None
        delegates = delegates_of(root, snap.virtual_services) if root is not None else ()
        target = RouteTarget(
            service, port, proxy.namespace, proxy.labels, snap.services, snap.dr_index, delegates
        )
        config.virtual_hosts.append(virtual_host(target, domains, root))
    config.virtual_hosts.append(block_all())
    return config


def route_plan(
    visible: Iterable[Service], client_namespace: str
) -> list[tuple[Service, int, tuple[str, ...]]]:
    """The HTTP proxy's virtual hosts in order: (service, port, domains), for a client of
    `client_namespace` that sees `visible`. A domain goes to the first service that claims it."""
    plan: list[tuple[Service, int, tuple[str, ...]]] = []
    used: set[str] = set()
    for service in visible:
        for port in service.ports:
            if not port.protocol.routed_as_http:
                continue
            domains = tuple(
                d for d in vhost_domains(service, port.port, client_namespace) if d not in used
            )
            if not domains:
                continue
            used.update(domains)
            plan.append((service, port.port, domains))
    return plan


def block_all() -> rc.VirtualHost:
    """The last virtual host: any other authority is not in the mesh."""
    return rc.VirtualHost(
        name="block_all",
        domains=["*"],
        routes=[
            rc.Route(
                name="block_all",
                match=rc.RouteMatch(prefix="/"),
                direct_response=rc.DirectResponseAction(
                    status=502, body={"inline_string": NOT_IN_MESH_BODY}
                ),
            )
        ],
    )


def vhost_domains(service: Service, port: int, client_namespace: str) -> list[str]:
    """Every name a client may use for a service, as Istio spells them.

    A Host header without a port means port 80 in HTTP, so bare names belong to port 80 only.
    Short names resolve in the caller's namespace, so they are added only for callers there.
    """
    host = service.hostname
    bases = [host]
    suffix = f".{service.namespace}.svc."
    # A wildcard host has no shorter names: "*" alone would claim every authority.
    if suffix in host and not host.startswith("*"):
        name = host.split(".", 1)[0]
        bases += [f"{name}.{service.namespace}.svc", f"{name}.{service.namespace}"]
        if service.namespace == client_namespace:
            bases.append(name)
    domains = [f"{b}:{port}" for b in bases]
    if port == 80:
        domains = [d for b in bases for d in (b, f"{b}:80")]
    return domains


def virtual_host(
    target: RouteTarget, domains: Sequence[str], virtual_service: VirtualService | None
) -> rc.VirtualHost:
    """One service port's virtual host, routed by `virtual_service` (as in Istio, the first
    VirtualService bound to the host wins on sidecars) with the delegates it names (in the
    target), or to all its endpoints."""
    routes: list[rc.Route] = []
    if virtual_service is not None:
        routes = virtual_service_routes(virtual_service, target)
    if not routes:
        routes = [default_route(target)]
    return rc.VirtualHost(
        name=names.virtual_host(target.service.hostname, target.port),
        domains=domains,
        routes=routes,
    )
