"""Semantic rules for VirtualService: hosts, matches, route actions, weights."""

from __future__ import annotations

from weft.api.durations import parse_duration
from weft.api.httproute import (
    DEFAULT_PORTS,
    GRPC_STATUS_CODES,
    Abort,
    CorsPolicy,
    Delay,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRewrite,
    HTTPRoute,
)
from weft.api.meta import is_object_name
from weft.api.validation_common import (
    Problems,
    check_addresses,
    check_destination_host,
    check_export_to,
    check_host,
    check_regex,
    check_string_match,
    check_string_matches,
    check_weights,
    is_namespace,
    problem,
)
from weft.api.virtualservice import TCPRoute, TLSRoute, VirtualService, VirtualServiceSpec

_REDIRECT_CODES = (301, 302, 303, 307, 308)
# Envoy's limit for a route table that does not raise it (max_direct_response_body_size_bytes).
MAX_DIRECT_RESPONSE_BYTES = 4096


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
    if route.redirect is not None:
        yield from _redirect(f"{field}.redirect", route.redirect)
    if route.direct_response is not None:
        yield from _direct_response(f"{field}.directResponse", route.direct_response)
    if route.rewrite is not None:
        yield from _rewrite(f"{field}.rewrite", route.rewrite)
    if route.fault is not None:
        yield from _fault(f"{field}.fault", route.fault)
    yield from _mirrors(field, route)
    if route.cors_policy is not None:
        yield from _cors(f"{field}.corsPolicy", route.cors_policy)


def _match(field: str, match: HTTPMatchRequest) -> Problems:
    for name in ("uri", "scheme", "method", "authority"):
        value = getattr(match, name)
        if value is not None:
            yield from check_string_match(f"{field}.{name}", value)
    yield from check_string_matches(f"{field}.headers", match.headers)
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


def _redirect(field: str, redirect: HTTPRedirect) -> Problems:
    if redirect.redirect_code not in _REDIRECT_CODES:
        yield problem(
            f"{field}.redirectCode",
            f"redirect code {redirect.redirect_code} is not a redirect",
            f"use one of {', '.join(map(str, _REDIRECT_CODES))}",
        )
    if redirect.port is not None and redirect.derive_port is not None:
        yield problem(field, "sets both port and derivePort", "keep only one of them")
    scheme = (redirect.scheme or "http").lower()
    if redirect.derive_port == "FROM_PROTOCOL_DEFAULT" and scheme not in DEFAULT_PORTS:
        yield problem(
            f"{field}.derivePort",
            f"scheme {redirect.scheme!r} has no default port",
            "use scheme http or https, or set 'port'",
        )


def _direct_response(field: str, response: HTTPDirectResponse) -> Problems:
    if not 200 <= response.status <= 599:
        yield problem(
            f"{field}.status",
            f"status {response.status} is out of range 200..599",
            "use an HTTP status code such as 200, 404 or 503",
        )
    body = response.body
    if body is None:
        return
    if body.string is not None and body.bytes is not None:
        yield problem(f"{field}.body", "sets both string and bytes", "keep only one of them")
        return
    try:
        size = len(body.content())
    except ValueError as exc:
        yield problem(
            f"{field}.body.bytes", str(exc), "encode the body in base64, e.g. 'aGVsbG8=' for hello"
        )
        return
    if size > MAX_DIRECT_RESPONSE_BYTES:
        # Envoy refuses the whole route table when one body is over its limit.
        yield problem(
            f"{field}.body",
            f"body is {size} bytes; a direct response body is at most "
            f"{MAX_DIRECT_RESPONSE_BYTES} bytes",
            "shorten the body, or serve it from a service",
        )


def _rewrite(field: str, rewrite: HTTPRewrite) -> Problems:
    if rewrite.uri_regex_rewrite is None:
        return
    if rewrite.uri is not None:
        yield problem(field, "sets both uri and uriRegexRewrite", "keep only one of them")
    yield from check_regex(f"{field}.uriRegexRewrite.match", rewrite.uri_regex_rewrite.match)


def _fault(field: str, fault: HTTPFaultInjection) -> Problems:
    if fault.delay is None and fault.abort is None:
        yield problem(
            field, "fault has no delay or abort", "add 'delay' or 'abort', or drop 'fault'"
        )
    if fault.delay is not None:
        yield from _delay(f"{field}.delay", fault.delay)
    if fault.abort is not None:
        yield from _abort(f"{field}.abort", fault.abort)


def _delay(field: str, delay: Delay) -> Problems:
    if delay.exponential_delay is not None:
        # Istio refuses it too: Envoy has no exponential delay to translate it to.
        yield problem(
            f"{field}.exponentialDelay",
            "exponentialDelay is not supported",
            "use 'fixedDelay', e.g. 'fixedDelay: 5s'",
        )
    elif delay.fixed_delay is None:
        yield problem(field, "has no fixedDelay", "add 'fixedDelay: 5s'")
    elif parse_duration(delay.fixed_delay) < 0.001:
        yield problem(
            f"{field}.fixedDelay",
            f"delay {delay.fixed_delay!r} is shorter than 1ms",
            "use a delay of at least 1ms, or drop the delay",
        )


def _abort(field: str, abort: Abort) -> Problems:
    if abort.http2_error is not None:
        # Istio refuses it too: Envoy's fault filter cannot reset a stream with an HTTP/2 error.
        yield problem(
            f"{field}.http2Error",
            "http2Error is not supported",
            "abort with 'httpStatus' (e.g. 503) or 'grpcStatus' (e.g. UNAVAILABLE)",
        )
        return
    if abort.http_status is None and abort.grpc_status is None:
        yield problem(field, "has no httpStatus", "add 'httpStatus: 503'")
    elif abort.http_status is not None and abort.grpc_status is not None:
        yield problem(field, "sets both httpStatus and grpcStatus", "keep only one of them")
    elif abort.http_status is not None and not 200 <= abort.http_status <= 599:
        yield problem(
            f"{field}.httpStatus",
            f"status {abort.http_status} is out of range 200..599",
            "use an HTTP status code such as 500 or 503",
        )
    elif abort.grpc_status is not None and abort.grpc_status.upper() not in GRPC_STATUS_CODES:
        yield problem(
            f"{field}.grpcStatus",
            f"{abort.grpc_status!r} is not a gRPC status name",
            "use a name such as UNAVAILABLE, INTERNAL or DEADLINE_EXCEEDED",
        )


def _mirrors(field: str, route: HTTPRoute) -> Problems:
    if route.mirror is not None:
        if route.mirrors:
            yield problem(field, "sets both mirror and mirrors", "move 'mirror' into 'mirrors'")
        yield from check_destination_host(f"{field}.mirror", route.mirror.host)
    for i, mirror in enumerate(route.mirrors):
        yield from check_destination_host(
            f"{field}.mirrors[{i}].destination", mirror.destination.host
        )


def _cors(field: str, cors: CorsPolicy) -> Problems:
    for i, origin in enumerate(cors.allow_origins):
        yield from check_string_match(f"{field}.allowOrigins[{i}]", origin)


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
