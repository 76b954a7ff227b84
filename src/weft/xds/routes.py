"""VirtualService HTTP routes -> Envoy routes. Pure translation of one route for one vhost."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from weft.api import DestinationRule, VirtualService
from weft.api.base import Destination, Percent, StringMatch
from weft.api.hosts import fqdn
from weft.api.httproute import (
    AUTHORITY_HEADERS,
    DEFAULT_PORTS,
    GRPC_STATUS_CODES,
    Headers,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRoute,
    HTTPRouteDestination,
)
from weft.api.trafficpolicy import ConsistentHashLB
from weft.registry.model import Service
from weft.snapshot.indexes import DestinationRuleIndex
from weft.xds import names
from weft.xds.delegation import http_rules
from weft.xds.policy import effective_policy
from weft.xds.protos import duration, istio_duration, pack

FAULT_FILTER = "envoy.filters.http.fault"
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True)
class RouteTarget:
    """The vhost being built: which service and port, for a client of which namespace and
    labels, and the services and DestinationRules its destinations are looked up in."""

    service: Service
    port: int
    client_namespace: str
    client_labels: Mapping[str, str]
    services: Mapping[str, Service]
    rules: DestinationRuleIndex
    # The delegate VirtualServices the routed VirtualService names (`delegation.delegates_of`).
    delegates: tuple[VirtualService, ...] = ()

    def rule_for(self, hostname: str) -> DestinationRule | None:
        """The DestinationRule that applies to `hostname` for this client."""
        service = self.services.get(hostname)
        namespace = service.namespace if service is not None else None
        return self.rules.lookup(hostname, self.client_namespace, namespace)


def default_route(target: RouteTarget) -> rc.Route:
    """A service with no VirtualService: everything to all its endpoints. Reads the service's
    DestinationRule for a hash key."""
    host = target.service.hostname
    action = rc.RouteAction(
        cluster=names.outbound_cluster(target.port, "", host),
        timeout=duration(0),
        retry_policy=default_retry_policy(),
    )
    # The service's DestinationRule may hash requests to its endpoints: give it the key.
    hash_policy = _hash_policy(host, target.port, "", target)
    if hash_policy is not None:
        action.hash_policy.append(hash_policy)
    return rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=action)


def default_retry_policy() -> rc.RetryPolicy:
    """Istio's implicit retries: two attempts on connection-level failures and 503."""
    return rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=_u32(2),
        retriable_status_codes=[503],
        retry_host_predicate=[
            rc.RetryPolicy.RetryHostPredicate(
                name="envoy.retry_host_predicates.previous_hosts",
                typed_config=pack(_previous_hosts()),
            )
        ],
        host_selection_retry_max_attempts=5,
    )


def _previous_hosts() -> previous_hosts_pb2.PreviousHostsPredicate:
    return previous_hosts_pb2.PreviousHostsPredicate()


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def virtual_service_routes(vs: VirtualService, target: RouteTarget) -> list[rc.Route]:
    """Envoy routes for one vhost from a VirtualService, with the routes of the delegate
    VirtualServices it names merged in; stops after a catch-all as Istio does."""
    routes: list[rc.Route] = []
    for rule in http_rules(vs, target.delegates):
        http = rule.http
        matches: list[HTTPMatchRequest | None] = list(_applicable_matches(http.match, target))
        if http.match and not matches:
            continue  # every match is for another port or another source
        for match in matches or [None]:
            routes.append(_route(rule.owner, http, rule.name, match, target))
            if match is None or _is_catch_all(match):
                return routes
    return routes


def _applicable_matches(
    matches: list[HTTPMatchRequest] | None, target: RouteTarget
) -> Iterator[HTTPMatchRequest]:
    for m in matches or []:
        if m.port is not None and m.port != target.port:
            continue
        if m.gateways:
            # Named gateways replace the source conditions; sidecars are the gateway "mesh".
            if "mesh" in m.gateways:
                yield m
            continue
        if m.source_labels and any(
            target.client_labels.get(k) != v for k, v in m.source_labels.items()
        ):
            continue
        if m.source_namespace and m.source_namespace != target.client_namespace:
            continue
        yield m


def _is_catch_all(match: HTTPMatchRequest) -> bool:
    uri = match.uri
    plain_uri = uri is None or (uri.prefix == "/" and not match.ignore_uri_case)
    return (
        plain_uri
        and not match.headers
        and not match.query_params
        and not match.without_headers
        and match.method is None
        and match.authority is None
        and match.scheme is None
    )


def _route(
    vs: VirtualService,
    http: HTTPRoute,
    name: str,
    match: HTTPMatchRequest | None,
    target: RouteTarget,
) -> rc.Route:
    route = rc.Route(name=http.name or name)
    route.match.CopyFrom(_route_match(match))
    if http.redirect is not None:
        route.redirect.CopyFrom(_redirect(http.redirect, target.port))
    elif http.direct_response is not None:
        dr = http.direct_response
        route.direct_response.status = dr.status
        if dr.body is not None and dr.body.bytes is not None:
            route.direct_response.body.inline_bytes = dr.body.content()
        elif dr.body is not None and dr.body.string is not None:
            route.direct_response.body.inline_string = dr.body.string
    else:
        # With several destinations, one weighing nothing gets nothing (Istio leaves it out).
        destinations = [d for d in http.route if len(http.route) == 1 or d.weight > 0]
        route.route.CopyFrom(_route_action(vs, http, destinations, target))
        if len(destinations) == 1 and destinations[0].headers is not None:
            _header_ops(route, destinations[0].headers)  # a lone destination's headers
    if http.headers is not None:
        _header_ops(route, http.headers)
    if http.fault is not None:
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack(_fault(http.fault)))
    return route


def _string_matcher(sm: StringMatch, ignore_case: bool = False) -> string_pb2.StringMatcher:
    if sm.exact is not None:
        return string_pb2.StringMatcher(exact=sm.exact, ignore_case=ignore_case)
    if sm.prefix is not None:
        return string_pb2.StringMatcher(prefix=sm.prefix, ignore_case=ignore_case)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=sm.regex))


def _route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    rm = rc.RouteMatch()
    if match is None or match.uri is None:
        rm.prefix = "/"
    elif match.uri.exact is not None:
        rm.path = match.uri.exact
    elif match.uri.prefix is not None:
        rm.prefix = match.uri.prefix
    else:
        rm.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.uri.regex))
    if match is None:
        return rm
    if match.ignore_uri_case:
        rm.case_sensitive.value = False
    for name, sm in sorted((match.headers or {}).items()):
        rm.headers.append(_header_matcher(name, sm))
    for pseudo, pseudo_match in ((":method", match.method), (":authority", match.authority)):
        if pseudo_match is not None:
            rm.headers.append(_header_matcher(pseudo, pseudo_match))
    if match.scheme is not None:
        rm.headers.append(_header_matcher(":scheme", match.scheme))
    for name, sm in sorted((match.without_headers or {}).items()):
        hm = _header_matcher(name, sm)
        hm.invert_match = True
        rm.headers.append(hm)
    for name, sm in sorted((match.query_params or {}).items()):
        qm = rc.QueryParameterMatcher(name=name)
        if sm.exact is None and sm.prefix is None and sm.regex is None:
            qm.present_match = True
        else:
            qm.string_match.CopyFrom(_string_matcher(sm))
        rm.query_parameters.append(qm)
    return rm


def _header_matcher(name: str, sm: StringMatch) -> rc.HeaderMatcher:
    if sm.exact is None and sm.prefix is None and sm.regex is None:
        return rc.HeaderMatcher(name=name, present_match=True)
    return rc.HeaderMatcher(name=name, string_match=_string_matcher(sm))


def destination_port(service: Service | None, requested: int | None, vhost_port: int) -> int:
    """Istio: an explicit port, else the service's only port, else the port being routed."""
    if requested:
        return requested
    if service is not None and len(service.ports) == 1:
        return service.ports[0].port
    return vhost_port


def destination_cluster(vs: VirtualService, destination: Destination, target: RouteTarget) -> str:
    host = fqdn(destination.host, vs.metadata.namespace)
    service = target.services.get(host)
    number = destination.port.number if destination.port is not None else None
    port = destination_port(service, number, target.port)
    return names.outbound_cluster(port, destination.subset or "", host)


def _route_action(
    vs: VirtualService,
    http: HTTPRoute,
    destinations: list[HTTPRouteDestination],
    target: RouteTarget,
) -> rc.RouteAction:
    action = rc.RouteAction()
    if len(destinations) == 1:
        action.cluster = destination_cluster(vs, destinations[0].destination, target)
    else:
        for d in destinations:
            wc = rc.WeightedCluster.ClusterWeight(
                name=destination_cluster(vs, d.destination, target), weight=_u32(d.weight)
            )
            if d.headers is not None:
                _header_ops(wc, d.headers)
                authority = d.headers.authority()
                if authority:
                    wc.host_rewrite_literal = authority
            action.weighted_clusters.clusters.append(wc)
    action.timeout.CopyFrom(istio_duration(http.timeout) if http.timeout else duration(0))
    if http.retries is None:
        action.retry_policy.CopyFrom(default_retry_policy())
    elif http.retries.attempts:
        action.retry_policy.CopyFrom(_retry_policy(http.retries))
    if http.rewrite is not None:
        rw = http.rewrite
        if rw.uri is not None:
            action.prefix_rewrite = rw.uri
        if rw.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.regex = rw.uri_regex_rewrite.match
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite
    authority = _authority(http, destinations)
    if authority:
        action.host_rewrite_literal = authority  # a oneof: set only when there is one
    for mirror in _mirrors(vs, http, target):
        action.request_mirror_policies.append(mirror)
    action.hash_policy.extend(_hash_policies(vs, destinations, target))
    return action


def _authority(http: HTTPRoute, destinations: list[HTTPRouteDestination]) -> str | None:
    """The authority to send: rewrite.authority, else one set as a header on the route,
    else one set on a lone destination (Istio's order)."""
    if http.rewrite is not None and http.rewrite.authority:
        return str(http.rewrite.authority)
    found = http.headers.authority() if http.headers is not None else None
    if found is None and len(destinations) == 1 and destinations[0].headers is not None:
        found = destinations[0].headers.authority()
    return found


def _retry_policy(retries: HTTPRetry) -> rc.RetryPolicy:
    policy = default_retry_policy()
    policy.num_retries.value = retries.attempts
    if retries.per_try_timeout:
        policy.per_try_timeout.CopyFrom(istio_duration(retries.per_try_timeout))
    if retries.retry_on:
        conditions: list[str] = []
        codes: list[int] = []
        for part in (p.strip() for p in retries.retry_on.split(",")):
            if part.isdigit():
                codes.append(int(part))
            elif part:
                conditions.append(part)
        if codes and "retriable-status-codes" not in conditions:
            conditions.append("retriable-status-codes")
        policy.retry_on = ",".join(conditions)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    return policy


def _mirrors(
    vs: VirtualService, http: HTTPRoute, target: RouteTarget
) -> Iterator[rc.RouteAction.RequestMirrorPolicy]:
    """Mirror destinations resolve as route destinations do (short names, implied ports)."""
    targets = [(m.destination, _percent_of(m.percentage, None)) for m in http.mirrors or []]
    if http.mirror is not None:
        targets.append((http.mirror, _percent_of(http.mirror_percentage, http.mirror_percent)))
    for dest, percent in targets:
        if percent == 0:
            continue  # Istio mirrors nothing rather than a share of nothing
        policy = rc.RouteAction.RequestMirrorPolicy(cluster=destination_cluster(vs, dest, target))
        policy.runtime_fraction.default_value.CopyFrom(_fraction(percent))
        yield policy


def _percent_of(
    percentage: Percent | None, deprecated: int | None, default: float = 100.0
) -> float:
    """A share in percent: `percentage` when set, else the deprecated integer form, else
    `default`."""
    if percentage is not None:
        return float(percentage.value)
    if deprecated is not None:
        return float(deprecated)
    return default


def _hash_policies(
    vs: VirtualService, destinations: list[HTTPRouteDestination], target: RouteTarget
) -> list[rc.RouteAction.HashPolicy]:
    """The hash key of each destination's cluster, from the policy of exactly that cluster
    (its host, subset and port); Envoy hashes a request once, over every key listed."""
    found: list[rc.RouteAction.HashPolicy] = []
    for d in destinations:
        host = fqdn(d.destination.host, vs.metadata.namespace)
        number = d.destination.port.number if d.destination.port is not None else None
        port = destination_port(target.services.get(host), number, target.port)
        policy = _hash_policy(host, port, d.destination.subset or "", target)
        if policy is not None and policy not in found:
            found.append(policy)
    return found


def _hash_policy(
    host: str, port: int, subset: str, target: RouteTarget
) -> rc.RouteAction.HashPolicy | None:
    dr = target.rule_for(host)
    lb = effective_policy(dr, port, subset).load_balancer
    if lb is None or lb.consistent_hash is None:
        return None
    return consistent_hash_policy(lb.consistent_hash)


def consistent_hash_policy(ch: ConsistentHashLB) -> rc.RouteAction.HashPolicy:
    hp = rc.RouteAction.HashPolicy()
    if ch.http_header_name:
        hp.header.header_name = ch.http_header_name
    elif ch.http_cookie is not None:
        hp.cookie.name = ch.http_cookie.name
        if ch.http_cookie.path:
            hp.cookie.path = ch.http_cookie.path
        if ch.http_cookie.ttl:
            hp.cookie.ttl.CopyFrom(istio_duration(ch.http_cookie.ttl))
    elif ch.use_source_ip:
        hp.connection_properties.source_ip = True
    elif ch.http_query_parameter_name:
        hp.query_parameter.name = ch.http_query_parameter_name
    return hp


def _redirect(redirect: HTTPRedirect, port: int) -> rc.RedirectAction:
    ra = rc.RedirectAction(response_code=_REDIRECT_CODES.get(redirect.redirect_code or 301, 0))
    if redirect.uri:
        ra.path_redirect = redirect.uri
    if redirect.authority:
        ra.host_redirect = redirect.authority
    if redirect.scheme:
        ra.scheme_redirect = redirect.scheme
    if redirect.port:
        ra.port_redirect = redirect.port
    elif redirect.derive_port == "FROM_REQUEST_PORT":
        # Envoy cannot copy the request's port, but this route only serves requests to `port`.
        ra.port_redirect = port
    elif redirect.derive_port == "FROM_PROTOCOL_DEFAULT" and not redirect.authority:
        # Left alone, Envoy keeps the port of the request's Host; a new authority has none.
        # The sidecar's outbound listener speaks plain HTTP, so the request's scheme is http.
        ra.port_redirect = DEFAULT_PORTS[(redirect.scheme or "http").lower()]
    return ra


def _header_ops(target: rc.Route | rc.WeightedCluster.ClusterWeight, headers: Headers) -> None:
    """Istio's `headers.request/response` set/add/remove onto a route or weighted cluster."""
    for direction, ops in (("request", headers.request), ("response", headers.response)):
        if ops is None:
            continue
        add = getattr(target, f"{direction}_headers_to_add")
        # The authority is not a header Envoy edits: it is rewritten (see _authority).
        edits = {k: v for k, v in ops.set.items() if k.lower() not in AUTHORITY_HEADERS}
        for name, value in sorted(edits.items()):
            add.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=value),
                    append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                )
            )
        edits = {k: v for k, v in ops.add.items() if k.lower() not in AUTHORITY_HEADERS}
        for name, value in sorted(edits.items()):
            add.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=value),
                    append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
                )
            )
        getattr(target, f"{direction}_headers_to_remove").extend(ops.remove or [])


def _fraction(percent: float) -> percent_pb2.FractionalPercent:
    # Istio's percentages are floats; a million-based fraction keeps 4 decimals.
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _fault(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    d = fault.delay
    if d is not None and d.fixed_delay is not None:  # validation requires fixedDelay
        out.delay.CopyFrom(
            common_fault.FaultDelay(
                fixed_delay=istio_duration(d.fixed_delay),
                # As Istio documents: without a percentage, no request is delayed.
                percentage=_fraction(_percent_of(d.percentage, d.percent, default=0.0)),
            )
        )
    if fault.abort is not None:
        a = fault.abort
        abort = fault_pb2.FaultAbort(
            # As Istio documents: without a percentage, no request is aborted.
            percentage=_fraction(_percent_of(a.percentage, None, default=0.0))
        )
        if a.grpc_status is not None:
            abort.grpc_status = _grpc_code(a.grpc_status)
        else:
            abort.http_status = a.http_status
        out.abort.CopyFrom(abort)
    return out


def _grpc_code(status: str) -> int:
    return GRPC_STATUS_CODES.index(status.upper())
