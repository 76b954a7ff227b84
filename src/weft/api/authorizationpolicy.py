"""AuthorizationPolicy: who may do what to a workload (ALLOW, DENY, AUDIT, CUSTOM)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from weft.api.base import IstioModel
from weft.api.policytarget import SecurityResource, TargetedPolicySpec

Action = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]


def _ports_as_text(value: Any) -> Any:
    # Istio's API types ports as strings; a YAML number means the same port.
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


PortList = Annotated[list[str], BeforeValidator(_ports_as_text)]


class Source(IstioModel):
    """Where a request comes from. Lists are ORed; fields are ANDed."""

    principals: list[str] = Field(default_factory=list)
    not_principals: list[str] = Field(default_factory=list)
    request_principals: list[str] = Field(default_factory=list)
    not_request_principals: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    not_namespaces: list[str] = Field(default_factory=list)
    ip_blocks: list[str] = Field(default_factory=list)
    not_ip_blocks: list[str] = Field(default_factory=list)
    remote_ip_blocks: list[str] = Field(default_factory=list)
    not_remote_ip_blocks: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)


class Operation(IstioModel):
    """What a request does. Lists are ORed; fields are ANDed."""

    hosts: list[str] = Field(default_factory=list)
    not_hosts: list[str] = Field(default_factory=list)
    ports: PortList = Field(default_factory=list)
    not_ports: PortList = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    not_methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    not_paths: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)


class RuleFrom(IstioModel):
    source: Source | None = None


class RuleTo(IstioModel):
    operation: Operation | None = None


class Condition(IstioModel):
    """An extra attribute test, such as `request.headers[version]` in ["v1"]."""

    key: str = ""
    values: list[str] = Field(default_factory=list)
    not_values: list[str] = Field(default_factory=list)


class Rule(IstioModel):
    """Matches when any `from`, any `to` and every `when` match; a missing part matches all."""

    from_: list[RuleFrom] | None = Field(default=None, alias="from")
    to: list[RuleTo] | None = None
    when: list[Condition] = Field(default_factory=list)


class ExtensionProviderRef(IstioModel):
    name: str = ""


class AuthorizationPolicySpec(TargetedPolicySpec):
    rules: list[Rule] = Field(default_factory=list)
    action: Action = "ALLOW"
    provider: ExtensionProviderRef | None = None


class AuthorizationPolicy(SecurityResource):
    kind: Literal["AuthorizationPolicy"] = "AuthorizationPolicy"
    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)


# --- `when` keys ---------------------------------------------------------------------------

PLAIN_ATTRIBUTES = frozenset(
    {
        "source.ip",
        "remote.ip",
        "source.namespace",
        "source.principal",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "destination.ip",
        "destination.port",
        "connection.sni",
    }
)
REQUEST_HEADERS = "request.headers"
REQUEST_CLAIMS = "request.auth.claims"
ENVOY_FILTERS = "experimental.envoy.filters"

_HEADER = re.compile(r"^request\.headers\[([^\[\]]+)\]$")
_CLAIMS = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_ENVOY_FILTER = re.compile(r"^experimental\.(envoy\.filters\.[A-Za-z0-9_.]+)\[([^\[\]]+)\]$")
_BRACKETED = re.compile(r"\[([^\[\]]+)\]")

CONDITION_KEYS_HINT = (
    "use one of request.headers[NAME], source.ip, remote.ip, source.namespace, "
    "source.principal, request.auth.principal, request.auth.audiences, "
    "request.auth.presenter, request.auth.claims[NAME], destination.ip, destination.port, "
    "connection.sni or experimental.envoy.filters.FILTER[KEY]"
)


@dataclass(frozen=True)
class ConditionKey:
    """A parsed `when` key: the attribute, and the names in brackets for map-like ones
    (a header name; a claim path; an Envoy filter name and metadata key)."""

    attribute: str
    names: tuple[str, ...] = ()


def parse_condition_key(key: str) -> ConditionKey | None:
    """The attribute a `when` key tests, or None when Istio has no such attribute."""
    if key in PLAIN_ATTRIBUTES:
        return ConditionKey(key)
    if match := _HEADER.match(key):
        return ConditionKey(REQUEST_HEADERS, (match.group(1),))
    if match := _CLAIMS.match(key):
        return ConditionKey(REQUEST_CLAIMS, tuple(_BRACKETED.findall(match.group(1))))
    if match := _ENVOY_FILTER.match(key):
        return ConditionKey(ENVOY_FILTERS, (match.group(1), match.group(2)))
    return None


# --- Istio's string forms ------------------------------------------------------------------

WildcardForm = Literal["any", "exact", "prefix", "suffix"]


def split_wildcard(value: str) -> tuple[WildcardForm, str]:
    """Istio's match forms: "*" (anything), "prefix*", "*suffix", or an exact value."""
    if value == "*":
        return "any", ""
    if value.endswith("*"):
        return "prefix", value[:-1]
    if value.startswith("*"):
        return "suffix", value[1:]
    return "exact", value


def is_path_template(path: str) -> bool:
    """A path with `{*}` (one segment) or `{**}` (the rest) operators."""
    return "{" in path or "}" in path
