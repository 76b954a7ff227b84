"""Semantic rules for the parts of an HTTP route: header edits, redirect, direct response,
rewrite, fault injection, mirrors and CORS."""

from __future__ import annotations

import re
from collections.abc import Mapping

from weft.api.httproute import (
    AUTHORITY_HEADERS,
    DEFAULT_PORTS,
    GRPC_STATUS_CODES,
    Abort,
    CorsPolicy,
    Delay,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPRedirect,
    HTTPRewrite,
    HTTPRoute,
)
from weft.api.validation_common import (
    Problems,
    check_destination_host,
    check_regex,
    check_string_match,
    key_path,
    problem,
)

_REDIRECT_CODES = (301, 302, 303, 307, 308)
# Envoy's limit for a route table that does not raise it (max_direct_response_body_size_bytes).
MAX_DIRECT_RESPONSE_BYTES = 4096


def check_http_parts(field: str, route: HTTPRoute) -> Problems:
    """Every part of one HTTP route but its matches and its choice of action."""
    if route.headers is not None:
        yield from check_headers(f"{field}.headers", route.headers)
    for i, dest in enumerate(route.route):
        if dest.headers is not None:
            yield from check_headers(f"{field}.route[{i}].headers", dest.headers)
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


# RFC 9110 token characters: what a header name is made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A header value may not carry these: they would end the header or the message.
_BREAKS_VALUE = re.compile(r"[\x00\r\n]")


def header_name_error(name: str, *, pseudo: bool = False) -> str | None:
    """Why `name` is not a header name (`pseudo`: ':path' and the like are allowed too)."""
    if not name:
        return "header name is empty"
    bare = name[1:] if pseudo and name.startswith(":") else name
    if not _TOKEN.match(bare):
        return f"{name!r} is not a header name"
    return None


def check_header_names(field: str, names: Mapping[str, object]) -> Problems:
    """Names of headers to match: tokens, or pseudo-headers such as ':path'."""
    for name in names:
        error = header_name_error(name, pseudo=True)
        if error is not None and name:  # an empty name is reported with the match
            yield problem(
                key_path(field, name),
                error,
                "use letters, digits and '-', e.g. 'x-request-id'",
            )


def check_headers(field: str, headers: Headers) -> Problems:
    if headers.request is not None:
        yield from _header_operations(f"{field}.request", headers.request, request=True)
    if headers.response is not None:
        yield from _header_operations(f"{field}.response", headers.response, request=False)


def _header_operations(field: str, ops: HeaderOperations, *, request: bool) -> Problems:
    for verb, values in (("set", ops.set), ("add", ops.add)):
        for name, value in values.items():
            where = key_path(f"{field}.{verb}", name)
            if request and name.lower() in AUTHORITY_HEADERS:
                pass  # rewrites the authority
            else:
                yield from _editable(where, name, request=request)
            if _BREAKS_VALUE.search(value):
                yield problem(
                    where,
                    f"value {value!r} has a line break or NUL character",
                    "write the value on one line",
                )
    for i, name in enumerate(ops.remove):
        yield from _editable(f"{field}.remove[{i}]", name, request=request)


def _editable(field: str, name: str, *, request: bool) -> Problems:
    authority = name.lower() in AUTHORITY_HEADERS
    if name.startswith(":") or authority:
        what = "the authority" if authority else "a pseudo-header"
        hint = "use 'rewrite.authority'" if request and authority else "drop it"
        yield problem(field, f"{name!r} is {what}; Envoy cannot edit it", hint)
        return
    error = header_name_error(name)
    if error is not None:
        yield problem(field, error, "use letters, digits and '-', e.g. 'x-request-id'")
