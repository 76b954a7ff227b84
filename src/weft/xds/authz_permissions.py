"""What a request does: an AuthorizationPolicy's `to` operations and destination-side `when`
conditions, as Envoy RBAC permissions.

Ports are decided here rather than in Envoy: each listener serves one workload port, so a
`ports` value either is that port (always true) or is not (never true). That also keeps
Istio's meaning in local mode, where Envoy listens on a different port than the workload's.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import path_pb2

from weft.api.authorizationpolicy import (
    ENVOY_FILTERS,
    ConditionKey,
    Operation,
    is_path_template,
    split_wildcard,
)
from weft.xds.authz_matchers import (
    PERMISSIONS,
    Permission,
    RuleContext,
    cidr,
    header,
    host_header,
    metadata,
    permission_metadata,
    present,
    string_matcher,
    string_or_list_value,
    values_condition,
)
from weft.xds.protos import pack

URI_TEMPLATE_EXTENSION = "envoy.path.match.uri_template.uri_template_matcher"
PERMISSION_ATTRIBUTES = frozenset(
    {"destination.ip", "destination.port", "connection.sni", ENVOY_FILTERS}
)


def operation_permission(ctx: RuleContext, op: Operation) -> Permission | None:
    """All of the operation's fields (each: any of its values, none of its not-values)."""
    return PERMISSIONS.all_of(
        [
            _field(ctx, "ports", op.ports, op.not_ports, "destination.port"),
            _field(ctx, "hosts", op.hosts, op.not_hosts, "host"),
            _field(ctx, "methods", op.methods, op.not_methods, "method"),
            _field(ctx, "paths", op.paths, op.not_paths, "path"),
        ]
    )


def condition_permission(
    ctx: RuleContext,
    key: str,
    parsed: ConditionKey,
    values: Sequence[str],
    not_values: Sequence[str],
) -> Permission | None:
    """A `when` condition on a destination attribute (see PERMISSION_ATTRIBUTES)."""
    return _field(ctx, key, values, not_values, parsed.attribute, parsed.names)


def _field(
    ctx: RuleContext,
    key: str,
    values: Sequence[str],
    not_values: Sequence[str],
    attribute: str,
    names: tuple[str, ...] = (),
) -> Permission | None:
    def build(value: str) -> Permission | None:
        return _permission(ctx, attribute, names, value)

    http_only = attribute in ("host", "method", "path")
    return values_condition(PERMISSIONS, ctx, key, values, not_values, build, http_only=http_only)


def _permission(
    ctx: RuleContext, attribute: str, names: tuple[str, ...], value: str
) -> Permission | None:
    if attribute == "destination.port":
        return PERMISSIONS.any if int(value) == ctx.port else None
    if attribute == "host":
        return Permission(header=host_header(value))
    if attribute == "method":
        return Permission(header=header(":method", value))
    if attribute == "path":
        return path_permission(value)
    if attribute == "destination.ip":
        return Permission(destination_ip=cidr(value))
    if attribute == "connection.sni":
        return Permission(requested_server_name=string_matcher(value))
    if attribute == ENVOY_FILTERS:
        filter_name, key = names
        matched = present() if value == "*" else string_or_list_value(string_matcher(value))
        return permission_metadata(metadata(filter_name, [key], matched))
    raise ValueError(f"{attribute} is not a destination attribute")


def path_permission(value: str) -> Permission:
    """Istio's path forms: exact, "prefix*", "*suffix", "*", and templates with {*} / {**}."""
    if is_path_template(value):
        # Envoy's template operators are the bare '*' and '**'.
        template = value.replace("{**}", "**").replace("{*}", "*")
        config = uri_template_match_pb2.UriTemplateMatchConfig(path_template=template)
        return Permission(
            uri_template=extension_pb2.TypedExtensionConfig(
                name=URI_TEMPLATE_EXTENSION, typed_config=pack(config)
            )
        )
    if split_wildcard(value)[0] == "any":
        return PERMISSIONS.any
    return Permission(url_path=path_pb2.PathMatcher(path=string_matcher(value)))
