"""Semantic rules of the security.istio.io kinds, as Istio's own validation states them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from weft.api.authorizationpolicy import (
    CONDITION_KEYS_HINT,
    AuthorizationPolicy,
    Condition,
    Operation,
    Rule,
    Source,
    is_path_template,
    parse_condition_key,
)
from weft.api.hosts import is_cidr
from weft.api.peerauthentication import PeerAuthentication
from weft.api.policytarget import TargetedPolicySpec, WorkloadPolicySpec
from weft.api.requestauthentication import RequestAuthentication
from weft.api.validation_common import Problems, check_labels, problem
from weft.api.validation_jwt import check_jwt_rule

WILDCARD_HINT = "'*' may only stand alone, start a value ('*suffix') or end it ('prefix*')"
CIDR_HINT = "use an address such as '10.0.0.1' or a block such as '10.0.0.0/16'"
# RFC 3986 path segment characters ('*' aside: a template uses operators, not wildcards).
_PATH_LITERAL = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})+$")
IP_ATTRIBUTES = frozenset({"source.ip", "remote.ip", "destination.ip"})
PORT_HINT = "use a port number from 1 to 65535, written as a string such as '8080'"


# --- targeting ---------------------------------------------------------------------------


def _selector(spec: WorkloadPolicySpec) -> Problems:
    if spec.selector is None:
        return
    labels = spec.selector.match_labels
    yield from check_labels("spec.selector.matchLabels", labels)
    for name, value in labels.items():
        if "*" in name or "*" in value:
            yield problem(
                f"spec.selector.matchLabels.{name}",
                f"label {name}={value!r} has a wildcard; selectors match labels exactly",
                "list the exact label values to select",
            )


def _targets(spec: TargetedPolicySpec) -> Problems:
    yield from _selector(spec)
    if spec.target_ref is not None and spec.target_refs:
        yield problem(
            "spec.targetRef",
            "sets both targetRef and targetRefs",
            "move the reference into targetRefs",
        )
    if spec.selector is not None and spec.has_target_refs:
        yield problem(
            "spec.selector",
            "sets both selector and targetRef(s)",
            "select workloads with 'selector', or attach to a Gateway with targetRefs, not both",
        )


# --- PeerAuthentication ------------------------------------------------------------------


def validate_peer_authentication(pa: PeerAuthentication) -> Problems:
    spec = pa.spec
    yield from _selector(spec)
    if spec.port_level_mtls and spec.match_labels is None:
        yield problem(
            "spec.portLevelMtls",
            "portLevelMtls needs a workload selector",
            "add 'selector: {matchLabels: {...}}' naming the workloads whose ports these are",
        )
    for port in spec.port_level_mtls:
        if not 1 <= port <= 65535:
            yield problem(
                f"spec.portLevelMtls.{port}",
                f"port {port} is out of range 1..65535",
                "use the workload's port number, such as 8080",
            )


# --- AuthorizationPolicy -----------------------------------------------------------------


def validate_authorization_policy(ap: AuthorizationPolicy) -> Problems:
    spec = ap.spec
    yield from _targets(spec)
    if spec.action == "CUSTOM":
        if spec.provider is None or not spec.provider.name:
            yield problem(
                "spec.provider",
                "action CUSTOM needs a provider",
                "add 'provider: {name: <extensionProviders name in the mesh config>}'",
            )
    elif spec.provider is not None:
        yield problem(
            "spec.provider",
            f"provider is only used with action CUSTOM, not {spec.action}",
            "set 'action: CUSTOM', or drop provider",
        )
    for i, rule in enumerate(spec.rules):
        yield from _rule(f"spec.rules[{i}]", rule)


def _rule(field: str, rule: Rule) -> Problems:
    if rule.from_ is not None and not rule.from_:
        yield problem(f"{field}.from", "is an empty list", "drop 'from' to match any source")
    for i, src in enumerate(rule.from_ or []):
        where = f"{field}.from[{i}].source"
        if src.source is None or src.source.is_empty():
            yield problem(
                where,
                "source is empty",
                "set principals, namespaces, ipBlocks, ... or drop this entry",
            )
        else:
            yield from _source(where, src.source)
    if rule.to is not None and not rule.to:
        yield problem(f"{field}.to", "is an empty list", "drop 'to' to match any operation")
    for i, to in enumerate(rule.to or []):
        where = f"{field}.to[{i}].operation"
        if to.operation is None or to.operation.is_empty():
            yield problem(
                where,
                "operation is empty",
                "set hosts, ports, methods, paths, ... or drop this entry",
            )
        else:
            yield from _operation(where, to.operation)
    for i, condition in enumerate(rule.when):
        yield from _condition(f"{field}.when[{i}]", condition)


def _source(field: str, src: Source) -> Problems:
    for name in ("principals", "not_principals", "namespaces", "not_namespaces"):
        yield from _wildcards(_at(field, Source, name), getattr(src, name))
    for name in ("request_principals", "not_request_principals"):
        where = _at(field, Source, name)
        values: list[str] = getattr(src, name)
        yield from _wildcards(where, values)
        for i, value in enumerate(values):
            if value and "*" not in value and "/" not in value:
                yield problem(
                    f"{where}[{i}]",
                    f"request principal {value!r} is not in issuer/subject form",
                    "write it as '<issuer>/<subject>', e.g. 'https://accounts.example.com/alice'",
                )
    for name in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
        yield from _cidrs(_at(field, Source, name), getattr(src, name))


def _operation(field: str, op: Operation) -> Problems:
    for name in ("hosts", "not_hosts", "methods", "not_methods"):
        yield from _wildcards(_at(field, Operation, name), getattr(op, name))
    for name in ("ports", "not_ports"):
        yield from _ports(_at(field, Operation, name), getattr(op, name))
    for name in ("paths", "not_paths"):
        where = _at(field, Operation, name)
        for i, path in enumerate(getattr(op, name)):
            yield from _path(f"{where}[{i}]", path)


def _condition(field: str, condition: Condition) -> Problems:
    if not condition.key:
        yield problem(f"{field}.key", "condition has no key", CONDITION_KEYS_HINT)
        return
    key = parse_condition_key(condition.key)
    if key is None:
        yield problem(
            f"{field}.key", f"{condition.key!r} is not a supported attribute", CONDITION_KEYS_HINT
        )
        return
    if not condition.values and not condition.not_values:
        yield problem(
            field,
            f"condition on {condition.key} has neither values nor notValues",
            "list the values to match in 'values' (or to refuse in 'notValues')",
        )
    for name in ("values", "not_values"):
        where = _at(field, Condition, name)
        values: list[str] = getattr(condition, name)
        if key.attribute in IP_ATTRIBUTES:
            yield from _cidrs(where, values)
        elif key.attribute == "destination.port":
            yield from _ports(where, values)
        else:
            yield from _wildcards(where, values)


# --- values ------------------------------------------------------------------------------


def _at(field: str, model: type[Source | Operation | Condition], name: str) -> str:
    """The path of a field as the YAML spells it."""
    return f"{field}.{model.model_fields[name].alias or name}"


def _wildcards(field: str, values: Sequence[str]) -> Problems:
    for i, value in enumerate(values):
        if not value:
            yield problem(
                f"{field}[{i}]", "is an empty string", "remove it, or write the value to match"
            )
        elif value != "*" and (value.count("*") > 1 or "*" in value[1:-1]):
            yield problem(
                f"{field}[{i}]", f"{value!r} uses '*' in a way Istio does not match", WILDCARD_HINT
            )


def _cidrs(field: str, values: Sequence[str]) -> Problems:
    for i, value in enumerate(values):
        if not is_cidr(value):
            yield problem(
                f"{field}[{i}]", f"{value!r} is not an IP address or CIDR block", CIDR_HINT
            )


def _ports(field: str, values: Sequence[str]) -> Problems:
    for i, value in enumerate(values):
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            yield problem(f"{field}[{i}]", f"{value!r} is not a port number", PORT_HINT)


def _path(field: str, path: str) -> Problems:
    if not path:
        yield problem(field, "is an empty string", "write the path to match, such as '/api/*'")
    elif is_path_template(path):
        yield from _path_template(field, path)
    elif path != "*" and (path.count("*") > 1 or "*" in path[1:-1]):
        yield problem(field, f"{path!r} uses '*' in a way Istio does not match", WILDCARD_HINT)
    elif not path.startswith(("/", "*")):
        yield problem(
            field,
            f"path {path!r} does not start with '/' and so can never match",
            f"write it as '/{path}'",
        )


def _path_template(field: str, path: str) -> Problems:
    """Istio's path templates: `{*}` is one whole segment, `{**}` the rest of the path."""
    hint = (
        "use '{*}' for one whole segment and '{**}' only as the last segment, "
        "e.g. '/api/{*}/items/{**}'"
    )
    if not path.startswith("/"):
        yield problem(field, f"path template {path!r} does not start with '/'", hint)
        return
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if not is_path_template(segment):
            if "*" in segment:
                yield problem(
                    field,
                    f"path template {path!r} mixes '*' wildcards with '{{*}}' operators",
                    hint,
                )
                return
            last = i == len(segments) - 1
            if not _PATH_LITERAL.match(segment) and not (last and not segment):
                yield problem(
                    field,
                    f"segment {segment!r} of path template {path!r} is empty or has "
                    "characters a URL path segment cannot have",
                    "percent-encode other characters, e.g. '%20' for a space",
                )
                return
            continue
        if segment not in ("{*}", "{**}"):
            yield problem(
                field,
                f"segment {segment!r} of {path!r} is not exactly '{{*}}' or '{{**}}'",
                hint,
            )
            return
        if segment == "{**}" and i != len(segments) - 1:
            yield problem(field, f"'{{**}}' in {path!r} is not the last segment", hint)
            return


# --- RequestAuthentication ---------------------------------------------------------------


def validate_request_authentication(ra: RequestAuthentication) -> Problems:
    spec = ra.spec
    yield from _targets(spec)
    for i, rule in enumerate(spec.jwt_rules):
        yield from check_jwt_rule(f"spec.jwtRules[{i}]", rule)
