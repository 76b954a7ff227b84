"""HTTPRoute and its parts: the HTTP half of a VirtualService."""

from __future__ import annotations

import base64
import binascii
import builtins
from typing import Annotated, Literal

from pydantic import Field

from weft.api.base import (
    Destination,
    Duration,
    IstioModel,
    NonNegativeInt,
    Percent,
    PortNumber,
    PositiveDuration,
    StringMatch,
)


class HeaderOperations(IstioModel):
    """Header edits, applied in the order set, add, remove."""

    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


# Setting one of these request headers rewrites the request's authority, as in Istio.
AUTHORITY_HEADERS = frozenset({":authority", "host"})


class Headers(IstioModel):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None

    def authority(self) -> str | None:
        """The authority the request edits set, if any ('set' wins over 'add')."""
        if self.request is None:
            return None
        for values in (self.request.set, self.request.add):
            for name, value in values.items():
                if name.lower() in AUTHORITY_HEADERS:
                    return value
        return None


class HTTPMatchRequest(IstioModel):
    """All conditions of one match must hold; the route's matches are OR-ed."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    # An empty StringMatch in these three maps tests for presence only.
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    port: PortNumber | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    ignore_uri_case: bool = False
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HTTPRouteDestination(IstioModel):
    destination: Destination
    weight: int = 0
    headers: Headers | None = None


# The port a URL scheme implies (a redirect's derivePort FROM_PROTOCOL_DEFAULT).
DEFAULT_PORTS = {"http": 80, "https": 443}


class HTTPRedirect(IstioModel):
    uri: str | None = None
    authority: str | None = None
    port: PortNumber | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: int = 301


class HTTPBody(IstioModel):
    """Either text or base64-encoded bytes."""

    string: str | None = None
    bytes: str | None = None

    def content(self) -> builtins.bytes:
        """The body as sent: the text in UTF-8, or the bytes decoded (ValueError if they are
        not base64)."""
        if self.bytes is not None:
            return decode_base64(self.bytes)
        return (self.string or "").encode()


def decode_base64(text: str) -> builtins.bytes:
    """Standard or URL-safe base64, padded or not (protobuf's JSON form of bytes accepts all)."""
    normal = text.strip().replace("-", "+").replace("_", "/")
    normal += "=" * (-len(normal) % 4)
    try:
        return base64.b64decode(normal, validate=True)
    except binascii.Error:
        raise ValueError(f"{text!r} is not base64") from None


class HTTPDirectResponse(IstioModel):
    status: int
    body: HTTPBody | None = None


class Delegate(IstioModel):
    """Hands the route to another VirtualService (which has no hosts of its own)."""

    name: str
    namespace: str | None = None


class RegexRewrite(IstioModel):
    match: str
    rewrite: str


class HTTPRewrite(IstioModel):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(IstioModel):
    attempts: NonNegativeInt = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None


class Delay(IstioModel):
    fixed_delay: PositiveDuration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None
    percent: Annotated[int, Field(ge=0, le=100)] | None = None  # deprecated: use percentage


class Abort(IstioModel):
    http_status: int | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


# gRPC status codes by name, in code order (the index is the code).
GRPC_STATUS_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip


class HTTPFaultInjection(IstioModel):
    delay: Delay | None = None
    abort: Abort | None = None


class HTTPMirrorPolicy(IstioModel):
    destination: Destination
    percentage: Percent | None = None


class CorsPolicy(IstioModel):
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_origin: list[str] = Field(default_factory=list)  # deprecated exact-only form
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] = "UNSPECIFIED"


class HTTPRoute(IstioModel):
    """One HTTP rule: matches, then exactly one action (route, redirect, response, delegate)."""

    name: str | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] = Field(default_factory=list)
    mirror_percent: Annotated[int, Field(ge=0, le=100)] | None = None  # deprecated
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None
