"""Semantic rules for VirtualService: hosts, matches, route actions, weights."""

from __future__ import annotations

from weft.api.httproute import HTTPMatchRequest, HTTPRoute
from weft.api.meta import is_object_name
from weft.api.validation_common import (
    Problems,
    check_addresses,
    check_destination_host,
    check_export_to,
    check_host,
    check_string_match,
    check_string_matches,
    check_weights,
    is_namespace,
    problem,
)
from weft.api.validation_http import check_header_names, check_http_parts
from weft.api.virtualservice import TCPRoute, TLSRoute, VirtualService, VirtualServiceSpec


def validate_virtual_service(vs: VirtualService) -> Problems:
    spec = vs.spec
    yield from _hosts(spec)
    yield from _gateways(spec)
    delegate_target = not spec.hosts
    for i, route in enumerate(spec.http):
        yield from _http_route(f"spec.http[{i}]", route, delegate_target=delegate_target)
    for i, tcp in enumerate(spec.tcp):
        yield from _tcp_route(f"spec.tcp[{i}]", tcp)
    for i, tls in enumerate(spec.tls):
        yield from _tls_route(f"spec.tls[{i}]", tls)
    if not (spec.http or spec.tcp or spec.tls):
        yield problem("spec", "has no http, tcp or tls routes", "add at least one route")
    yield from check_export_to("spec.exportTo", spec.export_to)


def _hosts(spec: VirtualServiceSpec) -> Problems:
    if not spec.hosts:
        # Without hosts a VirtualService can only be the target of another one's `delegate`.
        if spec.gateways or spec.tcp or spec.tls or not spec.http:
            yield problem(
                "spec.hosts",
                "VirtualService has no hosts",
                "list the hosts this VirtualService routes; only a delegate VirtualService "
                "(HTTP routes only, no gateways) may leave hosts out",
            )
        return
    bound_to_mesh = not spec.gateways or "mesh" in spec.gateways
    for i, host in enumerate(spec.hosts):
        field = f"spec.hosts[{i}]"
        if host == "*" and bound_to_mesh:
            yield problem(
                field,
                "host '*' is not allowed for the mesh",
                "name the hosts, or bind the VirtualService to a gateway only",
            )
            continue
        yield from check_host(field, host)


def _gateways(spec: VirtualServiceSpec) -> Problems:
    for i, gateway in enumerate(spec.gateways):
        if not gateway or gateway.startswith("/") or gateway.endswith("/"):
            yield problem(
                f"spec.gateways[{i}]",
                f"{gateway!r} is not a gateway reference",
                "use 'mesh', '<gateway name>' or '<namespace>/<gateway name>'",
            )


def _http_route(field: str, route: HTTPRoute, *, delegate_target: bool) -> Problems:
    for i, match in enumerate(route.match):
        yield from _match(f"{field}.match[{i}]", match)
    yield from _actions(field, route, delegate_target=delegate_target)
    yield from check_weights(f"{field}.route", route.route)
    for i, dest in enumerate(route.route):
        yield from check_destination_host(f"{field}.route[{i}].destination", dest.destination.host)
    yield from check_http_parts(field, route)


def _match(field: str, match: HTTPMatchRequest) -> Problems:
    for name in ("uri", "scheme", "method", "authority"):
        value = getattr(match, name)
        if value is not None:
            yield from check_string_match(f"{field}.{name}", value)
    yield from check_string_matches(f"{field}.headers", match.headers)
    yield from check_header_names(f"{field}.headers", match.headers)
    yield from check_header_names(f"{field}.withoutHeaders", match.without_headers)
    yield from check_string_matches(f"{field}.queryParams", match.query_params)
    yield from check_string_matches(f"{field}.withoutHeaders", match.without_headers)


def _actions(field: str, route: HTTPRoute, *, delegate_target: bool) -> Problems:
    present = [
        name
        for name, value in (
            ("route", route.route),
            ("redirect", route.redirect),
            ("directResponse", route.direct_response),
            ("delegate", route.delegate),
        )
        if value
    ]
    if not present:
        yield problem(
            field,
            "http route has no route, redirect, directResponse or delegate",
            "add a 'route' with at least one destination",
        )
    elif len(present) > 1:
        yield problem(
            field,
            f"http route has both {present[0]} and {present[1]}; it can take only one action",
            f"keep only one of {', '.join(present)}",
        )
    if route.delegate is not None and delegate_target:
        yield problem(
            f"{field}.delegate",
            "a delegate VirtualService (one without hosts) cannot delegate again",
            "route to destinations here instead",
        )
    if route.delegate is not None:
        if not is_object_name(route.delegate.name):
            yield problem(
                f"{field}.delegate.name",
                f"{route.delegate.name!r} is not a VirtualService name",
                "name the delegate VirtualService, e.g. 'reviews-routes'",
            )
        namespace = route.delegate.namespace
        if namespace is not None and not is_namespace(namespace):
            yield problem(
                f"{field}.delegate.namespace",
                f"{namespace!r} is not a namespace",
                "name the namespace of the delegate VirtualService, or leave it out for this one",
            )
    if route.redirect is not None and route.rewrite is not None:
        yield problem(
            field,
            "http route has both redirect and rewrite",
            "a redirect answers the client itself; drop 'rewrite' or 'redirect'",
        )


def _l4_routes(field: str, route: TCPRoute | TLSRoute) -> Problems:
    if not route.route:
        yield problem(field, "has no route destinations", "add a 'route' with a destination")
    yield from check_weights(f"{field}.route", route.route)
    for i, dest in enumerate(route.route):
        yield from check_destination_host(f"{field}.route[{i}].destination", dest.destination.host)


def _tcp_route(field: str, route: TCPRoute) -> Problems:
    for i, match in enumerate(route.match):
        yield from check_addresses(
            f"{field}.match[{i}].destinationSubnets", match.destination_subnets
        )
    yield from _l4_routes(field, route)


def _tls_route(field: str, route: TLSRoute) -> Problems:
    if not route.match:
        yield problem(field, "tls route has no match", "add a match with 'sniHosts'")
    for i, match in enumerate(route.match):
        if not match.sni_hosts:
            yield problem(
                f"{field}.match[{i}].sniHosts",
                "tls match has no sniHosts",
                "list the SNI host names this route matches",
            )
        for j, sni in enumerate(match.sni_hosts):
            yield from check_host(f"{field}.match[{i}].sniHosts[{j}]", sni)
        yield from check_addresses(
            f"{field}.match[{i}].destinationSubnets", match.destination_subnets
        )
    yield from _l4_routes(field, route)
