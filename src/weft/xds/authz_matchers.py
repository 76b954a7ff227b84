"""Building blocks of RBAC rules: a small algebra over Principal and Permission, and matchers
for Istio's value forms ("*", "prefix*", "*suffix", exact).

A condition is a proto, or NEVER (None) when it can be decided now that it matches nothing
(a port this listener does not serve, say). ANY is a condition that always matches. The
combinators simplify as they go, so a rule that can never match disappears instead of
reaching Envoy as dead config.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.rbac.v3.rbac_pb2 import Permission as Permission
from envoy.config.rbac.v3.rbac_pb2 import Principal as Principal
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import metadata_pb2, regex_pb2, string_pb2, value_pb2

from weft.api.authorizationpolicy import split_wildcard
from weft.xds.protos import u32

_M = TypeVar("_M", Principal, Permission)


@dataclass(frozen=True)
class _Algebra(Generic[_M]):
    """AND, OR and NOT for one of Envoy's RBAC match types."""

    kind: type[_M]
    and_field: str
    or_field: str
    not_field: str
    set_type: type
    set_items: str

    @property
    def any(self) -> _M:
        return self.kind(any=True)

    def all_of(self, items: Iterable[_M | None]) -> _M | None:
        kept: list[_M] = []
        for item in items:
            if item is None:
                return None
            if not item.any:
                kept.append(item)
        return self._join(self.and_field, kept) if kept else self.any

    def any_of(self, items: Iterable[_M | None]) -> _M | None:
        kept = [item for item in items if item is not None]
        if not kept:
            return None
        if any(item.any for item in kept):
            return self.any
        return self._join(self.or_field, kept)

    def negate(self, item: _M | None) -> _M | None:
        if item is None:
            return self.any
        if item.any:
            return None
        return self.kind(**{self.not_field: item})

    def _join(self, field: str, items: Sequence[_M]) -> _M:
        flat: list[_M] = []
        for item in items:
            # (a and b) and c is a and b and c: keep the generated config as flat as the rule.
            if item.HasField(field):
                flat.extend(getattr(getattr(item, field), self.set_items))
            else:
                flat.append(item)
        if len(flat) == 1:
            return flat[0]
        return self.kind(**{field: self.set_type(**{self.set_items: flat})})


PRINCIPALS = _Algebra(Principal, "and_ids", "or_ids", "not_id", Principal.Set, "ids")
PERMISSIONS = _Algebra(Permission, "and_rules", "or_rules", "not_rule", Permission.Set, "rules")


# --- translating one rule ----------------------------------------------------------------

logger = logging.getLogger("weft.xds.authz")


class SkipRule(Exception):
    """The rule needs what this listener cannot see (HTTP fields on TCP): leave it out."""


@dataclass(frozen=True)
class RuleContext:
    """What a rule is translated for: the mesh's trust domain, the workload port the listener
    serves, whether the listener is plain TCP, and what to do with HTTP-only fields there.

    On TCP, Istio drops an ALLOW rule that uses HTTP-only fields (it could only allow too
    much), but only drops the fields from a DENY or AUDIT rule (so it denies or audits more).
    """

    trust_domain: str
    port: int
    tcp: bool = False
    widen_unsupported: bool = False
    rule_name: str = ""  # for log lines


def values_condition(
    algebra: _Algebra[_M],
    ctx: RuleContext,
    key: str,
    values: Sequence[str],
    not_values: Sequence[str],
    build: Callable[[str], _M | None],
    *,
    http_only: bool = False,
) -> _M | None:
    """One field of a rule: any of `values` and none of `not_values`."""
    if not values and not not_values:
        return algebra.any
    if http_only and ctx.tcp:
        if ctx.widen_unsupported:
            logger.warning(
                "%s: %s applies to HTTP only; ignored on TCP port %d, so the rule matches more",
                ctx.rule_name,
                key,
                ctx.port,
            )
            return algebra.any
        raise SkipRule(f"{key} applies to HTTP only")
    parts: list[_M | None] = []
    if values:
        parts.append(algebra.any_of(build(v) for v in values))
    if not_values:
        parts.append(algebra.negate(algebra.any_of(build(v) for v in not_values)))
    return algebra.all_of(parts)


# --- strings ---------------------------------------------------------------------------------


def regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def string_matcher(value: str, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    """Istio's forms: "*" matches any value (present), "a*" a prefix, "*a" a suffix."""
    form, text = split_wildcard(value)
    if form == "any":
        return regex(".*")
    if form == "prefix" and text:
        return string_pb2.StringMatcher(prefix=text, ignore_case=ignore_case)
    if form == "suffix" and text:
        return string_pb2.StringMatcher(suffix=text, ignore_case=ignore_case)
    return string_pb2.StringMatcher(exact=text, ignore_case=ignore_case)


def header(name: str, value: str) -> rc.HeaderMatcher:
    if value == "*":
        return rc.HeaderMatcher(name=name, present_match=True)
    return rc.HeaderMatcher(name=name, string_match=string_matcher(value))


def host_header(value: str) -> rc.HeaderMatcher:
    """:authority, ignoring case; a host written without a port also matches it with one."""
    form, text = split_wildcard(value)
    if form == "any":
        return rc.HeaderMatcher(name=":authority", present_match=True)
    escaped = re.escape(text)
    has_port = re.search(r":[0-9]+$", text) is not None
    optional_port = "" if has_port else "(:[0-9]+)?"
    if form == "prefix":
        pattern = f"(?i){escaped}.*"
    elif form == "suffix":
        pattern = f"(?i).*{escaped}{optional_port}"
    else:
        pattern = f"(?i){escaped}{optional_port}"
    return rc.HeaderMatcher(name=":authority", string_match=regex(pattern))


def cidr(value: str) -> address_pb2.CidrRange:
    """A CidrRange from "10.0.0.1" or "10.0.0.0/16" (validated at load time)."""
    address, _, length = value.partition("/")
    if not length:
        length = "128" if ":" in address else "32"
    return address_pb2.CidrRange(address_prefix=address, prefix_len=u32(int(length)))


# --- dynamic metadata --------------------------------------------------------------------


def metadata(
    filter_name: str, path: Sequence[str], value: value_pb2.ValueMatcher
) -> metadata_pb2.MetadataMatcher:
    return metadata_pb2.MetadataMatcher(
        filter=filter_name,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=key) for key in path],
        value=value,
    )


def present() -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(present_match=True)


def string_value(matcher: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(string_match=matcher)


def string_or_list_value(matcher: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    """A claim may be a string or a list of strings (aud, groups): match either shape."""
    single = string_value(matcher)
    listed = value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=single))
    return value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=[single, listed]))


def principal_metadata(matcher: metadata_pb2.MetadataMatcher) -> Principal:
    return Principal(sourced_metadata=rbac_pb2.SourcedMetadata(metadata_matcher=matcher))


def permission_metadata(matcher: metadata_pb2.MetadataMatcher) -> Permission:
    return Permission(sourced_metadata=rbac_pb2.SourcedMetadata(metadata_matcher=matcher))
