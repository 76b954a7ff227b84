"""CUSTOM AuthorizationPolicies: delegate the decision to an ext_authz service from the mesh
config, but only for requests the policies' rules match.

As Istio does, a shadow-only RBAC filter evaluates the CUSTOM rules and records the policy
that matched in dynamic metadata; the ext_authz filter after it runs only when that entry is
present. A request no CUSTOM rule matches never reaches the authorization service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2, http_uri_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2 as ext
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import http_status_pb2

from weft.api.meshconfig import (
    EnvoyExtAuthzGrpcProvider,
    EnvoyExtAuthzHttpProvider,
    ExtensionProvider,
    RequestBody,
    provider_host,
)
from weft.xds import names
from weft.xds.authz_matchers import metadata, present, regex, string_matcher
from weft.xds.protos import istio_duration, pack

RBAC_FILTER = "envoy.filters.http.rbac"
EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
DEFAULT_TIMEOUT = "600s"  # Istio's default for ext_authz providers
DEFAULT_STATUS_ON_ERROR = 403
SHADOW_POLICY_ID = "shadow_effective_policy_id"


def shadow_prefix(provider: str) -> str:
    """The RBAC shadow stat prefix (and metadata key prefix) for one provider's rules."""
    return "authz_custom_" + re.sub(r"[^a-z0-9_]", "_", provider.lower()) + "_"


def custom_filters(
    provider: ExtensionProvider, rules: Mapping[str, rbac_pb2.Policy]
) -> list[hcm.HttpFilter]:
    """The shadow RBAC filter and the ext_authz filter it gates, for one provider."""
    prefix = shadow_prefix(provider.name)
    shadow = http_rbac.RBAC(
        shadow_rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW, policies=dict(rules)),
        shadow_rules_stat_prefix=prefix,
    )
    config = ext_authz(provider)
    config.filter_enabled_metadata.CopyFrom(
        metadata(RBAC_FILTER, [prefix + SHADOW_POLICY_ID], present())
    )
    return [
        hcm.HttpFilter(name=RBAC_FILTER, typed_config=pack(shadow)),
        hcm.HttpFilter(name=EXT_AUTHZ_FILTER, typed_config=pack(config)),
    ]


def ext_authz(provider: ExtensionProvider) -> ext.ExtAuthz:
    """Envoy's ext_authz config for an envoyExtAuthzHttp or envoyExtAuthzGrpc provider."""
    if provider.envoy_ext_authz_http is not None:
        return _http(provider.envoy_ext_authz_http, provider.name)
    if provider.envoy_ext_authz_grpc is not None:
        return _grpc(provider.envoy_ext_authz_grpc, provider.name)
    raise ValueError(f"provider {provider.name!r} is not an ext_authz provider")


def _common(
    name: str,
    fail_open: bool,
    status_on_error: int | None,
    body: RequestBody | None,
) -> ext.ExtAuthz:
    config = ext.ExtAuthz(
        transport_api_version=config_source_pb2.V3,
        failure_mode_allow=fail_open,
        status_on_error=http_status_pb2.HttpStatus(code=_status(status_on_error)),
        stat_prefix=re.sub(r"[^A-Za-z0-9_]", "_", name),
    )
    if body is not None:
        config.with_request_body.CopyFrom(
            ext.BufferSettings(
                max_request_bytes=body.max_request_bytes or 8192,
                allow_partial_message=body.allow_partial_message,
                pack_as_bytes=body.pack_as_bytes,
            )
        )
    return config


def _http(http: EnvoyExtAuthzHttpProvider, name: str) -> ext.ExtAuthz:
    host = provider_host(http.service)
    config = _common(name, http.fail_open, http.status_on_error, http.include_request_body_in_check)
    service = config.http_service
    service.server_uri.CopyFrom(
        http_uri_pb2.HttpUri(
            uri=f"http://{host}:{http.port}",
            cluster=names.outbound_cluster(http.port, "", host),
            timeout=istio_duration(http.timeout or DEFAULT_TIMEOUT),
        )
    )
    if http.path_prefix:
        service.path_prefix = http.path_prefix
    service.authorization_request.headers_to_add.extend(
        base_pb2.HeaderValue(key=key, value=value)
        for key, value in sorted(http.include_additional_headers_in_check.items())
    )
    response = service.authorization_response
    for target, patterns in (
        (response.allowed_upstream_headers, http.headers_to_upstream_on_allow),
        (response.allowed_client_headers, http.headers_to_downstream_on_deny),
        (response.allowed_client_headers_on_success, http.headers_to_downstream_on_allow),
    ):
        if patterns:
            target.patterns.extend(_header_patterns(patterns))
    sent = [*http.include_request_headers_in_check, *http.include_headers_in_check]
    if sent:
        config.allowed_headers.patterns.extend(_header_patterns(sent))
    return config


def _grpc(grpc: EnvoyExtAuthzGrpcProvider, name: str) -> ext.ExtAuthz:
    host = provider_host(grpc.service)
    config = _common(name, grpc.fail_open, grpc.status_on_error, grpc.include_request_body_in_check)
    config.grpc_service.CopyFrom(
        grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                cluster_name=names.outbound_cluster(grpc.port, "", host), authority=host
            ),
            timeout=istio_duration(grpc.timeout or DEFAULT_TIMEOUT),
        )
    )
    return config


def _header_patterns(patterns: Sequence[str]) -> list[string_pb2.StringMatcher]:
    return [regex(".*") if p == "*" else string_matcher(p, ignore_case=True) for p in patterns]


def _status(code: int | None) -> int:
    if code is None:
        return DEFAULT_STATUS_ON_ERROR
    # Envoy accepts only the status codes its enum names.
    return code if code in http_status_pb2.StatusCode.values() else DEFAULT_STATUS_ON_ERROR
