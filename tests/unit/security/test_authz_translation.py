"""AuthorizationPolicy -> Envoy RBAC / ext_authz filters: what a user would see in a config
dump, and the decisions it leads to."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac
from google.protobuf import json_format

from tests.unit.security.conftest import authorization_policies, policy
from weft.api import MeshConfig, parse_mesh_config
from weft.xds.authz import http_rbac_filters, network_rbac_filters

TD = "cluster.local"
LOG = rbac_pb2.RBAC.LOG
ACTIONS = {rbac_pb2.RBAC.ALLOW: "ALLOW", rbac_pb2.RBAC.DENY: "DENY", LOG: "AUDIT"}


def http(text: str, port: int = 8080, **kwargs: Any) -> list[hcm.HttpFilter]:
    return http_rbac_filters(authorization_policies(text), kwargs.pop("td", TD), port, **kwargs)


def unpack_rbac(f: hcm.HttpFilter) -> http_rbac.RBAC:
    config = http_rbac.RBAC()
    assert f.typed_config.Unpack(config), f.name
    return config


def layout(filters: list[hcm.HttpFilter]) -> list[str]:
    """Each filter as the decision it makes: ALLOW/DENY/AUDIT, shadow, ext_authz."""
    out = []
    for f in filters:
        if f.name == "envoy.filters.http.ext_authz":
            out.append("ext_authz")
            continue
        config = unpack_rbac(f)
        out.append(ACTIONS[config.rules.action] if config.HasField("rules") else "shadow")
    return out


def rules_of(f: hcm.HttpFilter) -> dict[str, Any]:
    """The filter's Envoy policies as plain data, by Istio's rule names."""
    config = unpack_rbac(f)
    rules = config.rules if config.HasField("rules") else config.shadow_rules
    return {k: json_format.MessageToDict(v) for k, v in rules.policies.items()}


def only_rule(filters: list[hcm.HttpFilter]) -> dict[str, Any]:
    (f,) = filters
    (rule,) = rules_of(f).values()
    return rule


def allow(rule: str, name: str = "p") -> str:
    return policy(name, f"{{rules: [{rule}]}}")


# --- which filters, in which order ----------------------------------------------------------


def test_no_policy_means_no_filter() -> None:
    assert http("") == []


def test_deny_only_has_no_allow_filter_so_everything_else_passes() -> None:
    text = policy("d", "{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}")
    assert layout(http(text)) == ["DENY"]


def test_istio_evaluation_order() -> None:
    text = (
        allow("{to: [{operation: {methods: [GET]}}]}", "a")
        + policy("d", "{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}")
        + policy("au", "{action: AUDIT, rules: [{}]}")
        + policy("c", "{action: CUSTOM, provider: {name: ext}, rules: [{}]}")
    )
    mesh = parse_mesh_config(
        "extensionProviders: [{name: ext, envoyExtAuthzGrpc: {service: a.b, port: 9000}}]", "m"
    )
    assert layout(http(text, mesh=mesh)) == ["AUDIT", "shadow", "ext_authz", "DENY", "ALLOW"]


def test_allow_nothing_policy_refuses_everything() -> None:
    (f,) = http(policy("allow-nothing", "{}"))
    assert layout([f]) == ["ALLOW"]
    assert rules_of(f) == {}


def test_rules_are_named_as_istio_names_them() -> None:
    (f,) = http(policy("httpbin", "{rules: [{}, {to: [{operation: {methods: [GET]}}]}]}"))
    assert sorted(rules_of(f)) == [
        "ns[foo]-policy[httpbin]-rule[0]",
        "ns[foo]-policy[httpbin]-rule[1]",
    ]


def test_every_rbac_filter_has_a_stat_prefix() -> None:
    text = allow("{}") + policy("d", "{action: DENY, rules: [{}]}")
    prefixes = [unpack_rbac(f).rules_stat_prefix for f in http(text)]
    assert prefixes == ["authz_deny_", "authz_allow_"]
    tcp = network_rbac_filters(authorization_policies(text), TD, 9000)
    configs = [network_rbac.RBAC() for _ in tcp]
    for f, config in zip(tcp, configs, strict=True):
        f.typed_config.Unpack(config)
    assert [c.stat_prefix for c in configs] == ["tcp.authz_deny", "tcp.authz_allow"]


# --- ports: decided per listener -----------------------------------------------------------


def test_rules_for_other_ports_drop_out() -> None:
    text = allow("{to: [{operation: {ports: ['9090']}}]}, {to: [{operation: {ports: ['8080']}}]}")
    (f,) = http(text, port=8080)
    assert list(rules_of(f)) == ["ns[foo]-policy[p]-rule[1]"]
    assert rules_of(f)["ns[foo]-policy[p]-rule[1]"]["permissions"] == [{"any": True}]


def test_allow_policy_for_another_port_still_closes_this_port() -> None:
    (f,) = http(allow("{to: [{operation: {ports: ['9090']}}]}"), port=8080)
    assert layout([f]) == ["ALLOW"] and rules_of(f) == {}


def test_deny_policy_for_another_port_adds_nothing() -> None:
    text = policy("d", "{action: DENY, rules: [{to: [{operation: {ports: ['9090']}}]}]}")
    assert http(text, port=8080) == []


def test_not_ports_and_destination_port_conditions() -> None:
    text = allow(
        "{to: [{operation: {notPorts: ['8080']}}]},"
        " {when: [{key: destination.port, values: ['8080']}]},"
        " {when: [{key: destination.port, notValues: ['8080']}]}"
    )
    (f,) = http(text, port=8080)
    assert list(rules_of(f)) == ["ns[foo]-policy[p]-rule[1]"]


# --- sources ---------------------------------------------------------------------------------


def principal_names(rule: dict[str, Any]) -> list[dict[str, Any]]:
    (principal,) = rule["principals"]
    ids = principal.get("orIds", {}).get("ids", [principal])
    return [i["authenticated"]["principalName"] for i in ids]


def test_principals_match_the_peer_certificate_uri() -> None:
    rule = only_rule(
        http(
            allow(
                "{from: [{source: {principals: ['cluster.local/ns/default/sa/curl',"
                " 'cluster.local/ns/dev/*', '*/sa/admin', 'other.td/ns/a/sa/b']}}]}"
            ),
            td="prod.example.com",
        )
    )
    # "cluster.local" stands for this mesh's trust domain, as in Istio.
    assert principal_names(rule) == [
        {"exact": "spiffe://prod.example.com/ns/default/sa/curl"},
        {"prefix": "spiffe://prod.example.com/ns/dev/"},
        {"suffix": "/sa/admin"},
        {"exact": "spiffe://other.td/ns/a/sa/b"},
    ]


def test_any_principal_means_any_authenticated_peer() -> None:
    rule = only_rule(http(allow("{from: [{source: {principals: ['*']}}]}")))
    assert principal_names(rule) == [{"safeRegex": {"regex": ".+"}}]


def test_namespaces_match_the_namespace_part_of_the_identity() -> None:
    rule = only_rule(http(allow("{from: [{source: {namespaces: [foo, 'team-*']}}]}")))
    patterns = [m["safeRegex"]["regex"] for m in principal_names(rule)]
    identity = "spiffe://cluster.local/ns/{}/sa/default"
    assert re.fullmatch(patterns[0], identity.format("foo"))
    assert not re.fullmatch(patterns[0], identity.format("foobar"))
    assert re.fullmatch(patterns[1], identity.format("team-a"))
    assert not re.fullmatch(patterns[1], identity.format("my-team-a"))


def test_not_forms_negate_the_whole_list() -> None:
    rule = only_rule(http(allow("{from: [{source: {notNamespaces: [a, b]}}]}")))
    (principal,) = rule["principals"]
    assert len(principal["notId"]["orIds"]["ids"]) == 2


def test_ip_blocks_check_the_peer_and_remote_ip_blocks_the_client() -> None:
    rule = only_rule(
        http(allow("{from: [{source: {ipBlocks: [10.0.0.1], remoteIpBlocks: [192.168.0.0/16]}}]}"))
    )
    (principal,) = rule["principals"]
    assert principal["andIds"]["ids"] == [
        {"directRemoteIp": {"addressPrefix": "10.0.0.1", "prefixLen": 32}},
        {"remoteIp": {"addressPrefix": "192.168.0.0", "prefixLen": 16}},
    ]


def jwt_claim(key: str, matcher: dict[str, Any]) -> dict[str, Any]:
    return {
        "sourcedMetadata": {
            "metadataMatcher": {
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{"key": "jwt_payload"}, {"key": key}],
                "value": matcher,
            }
        }
    }


def test_request_principal_is_issuer_and_subject_of_the_verified_token() -> None:
    rule = only_rule(
        http(allow("{from: [{source: {requestPrincipals: ['https://idp.example.com/alice']}}]}"))
    )
    assert rule["principals"] == [
        {
            "andIds": {
                "ids": [
                    jwt_claim("iss", {"stringMatch": {"exact": "https://idp.example.com"}}),
                    jwt_claim("sub", {"stringMatch": {"exact": "alice"}}),
                ]
            }
        }
    ]


def test_any_request_principal_means_a_verified_token() -> None:
    rule = only_rule(http(allow("{from: [{source: {requestPrincipals: ['*']}}]}")))
    assert rule["principals"] == [jwt_claim("iss", {"presentMatch": True})]


# --- operations ------------------------------------------------------------------------------


def test_hosts_methods_and_paths() -> None:
    rule = only_rule(
        http(allow("{to: [{operation: {hosts: [Example.com], methods: [GET], paths: ['/api*']}}]}"))
    )
    host, method, path = rule["permissions"][0]["andRules"]["rules"]
    pattern = host["header"]["stringMatch"]["safeRegex"]["regex"]
    assert host["header"]["name"] == ":authority"
    for authority in ("example.com", "EXAMPLE.COM:8080"):
        assert re.fullmatch(pattern, authority)
    assert not re.fullmatch(pattern, "example.com.evil")
    assert method == {"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}
    assert path == {"urlPath": {"path": {"prefix": "/api"}}}


@pytest.mark.parametrize(
    ("path", "matcher"),
    [
        ("/info", {"urlPath": {"path": {"exact": "/info"}}}),
        ("*.png", {"urlPath": {"path": {"suffix": ".png"}}}),
        ("*", {"any": True}),
    ],
)
def test_path_forms(path: str, matcher: dict[str, Any]) -> None:
    rule = only_rule(http(allow(f"{{to: [{{operation: {{paths: ['{path}']}}}}]}}")))
    assert rule["permissions"] == [matcher]


def test_path_templates_use_envoys_uri_template_matcher() -> None:
    rule = only_rule(http(allow("{to: [{operation: {paths: ['/items/{*}/parts/{**}']}}]}")))
    template = rule["permissions"][0]["uriTemplate"]["typedConfig"]["pathTemplate"]
    assert template == "/items/*/parts/**"


# --- conditions ------------------------------------------------------------------------------


def test_header_and_claim_conditions() -> None:
    rule = only_rule(
        http(
            allow(
                "{when: [{key: 'request.headers[x-version]', values: ['v2*']},"
                " {key: 'request.auth.claims[groups]', notValues: [guest]}]}"
            )
        )
    )
    header, claim = rule["principals"][0]["andIds"]["ids"]
    assert header == {"header": {"name": "x-version", "stringMatch": {"prefix": "v2"}}}
    # A claim may be a string or a list: either shape matches.
    one_of = {"stringMatch": {"exact": "guest"}}
    either = {"orMatch": {"valueMatchers": [one_of, {"listMatch": {"oneOf": one_of}}]}}
    assert claim == {"notId": jwt_claim("groups", either)}


def test_nested_claims_follow_the_path() -> None:
    rule = only_rule(http(allow("{when: [{key: 'request.auth.claims[a][b]', values: ['*']}]}")))
    path = rule["principals"][0]["sourcedMetadata"]["metadataMatcher"]["path"]
    assert path == [{"key": "jwt_payload"}, {"key": "a"}, {"key": "b"}]


def test_destination_conditions_go_to_permissions() -> None:
    rule = only_rule(
        http(
            allow(
                "{when: [{key: destination.ip, values: [10.0.0.0/8]},"
                " {key: connection.sni, values: ['*.example.com']}]}"
            )
        )
    )
    assert rule["principals"] == [{"any": True}]
    assert rule["permissions"][0]["andRules"]["rules"] == [
        {"destinationIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}},
        {"requestedServerName": {"suffix": ".example.com"}},
    ]


# --- CUSTOM ------------------------------------------------------------------------------------

MESH = """
extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: foo/ext-authz.foo.svc.cluster.local
    port: 8000
    pathPrefix: /check
    includeRequestHeadersInCheck: [x-ext-authz, "x-user-*"]
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [x-reason]
- name: grpc-authz
  envoyExtAuthzGrpc: {service: authz.foo.svc.cluster.local, port: 9000, timeout: 1s,
                      failOpen: true}
"""
CUSTOM = policy(
    "ext",
    "{action: CUSTOM, provider: {name: http-authz},"
    " rules: [{to: [{operation: {paths: ['/admin*']}}]}]}",
)


def ext_authz_of(f: hcm.HttpFilter) -> ext_authz_pb2.ExtAuthz:
    config = ext_authz_pb2.ExtAuthz()
    assert f.typed_config.Unpack(config)
    return config


def test_custom_runs_ext_authz_only_where_its_rules_match() -> None:
    shadow, ext = http(CUSTOM, mesh=parse_mesh_config(MESH, "mesh.yaml"))
    assert list(rules_of(shadow)) == ["ns[foo]-policy[ext]-rule[0]"]
    assert unpack_rbac(shadow).shadow_rules_stat_prefix == "authz_custom_http_authz_"
    config = ext_authz_of(ext)
    gate = json_format.MessageToDict(config.filter_enabled_metadata)
    assert gate == {
        "filter": "envoy.filters.http.rbac",
        "path": [{"key": "authz_custom_http_authz_shadow_effective_policy_id"}],
        "value": {"presentMatch": True},
    }


def test_http_provider_config() -> None:
    _, ext = http(CUSTOM, mesh=parse_mesh_config(MESH, "mesh.yaml"))
    config = ext_authz_of(ext)
    service = config.http_service
    assert service.server_uri.cluster == "outbound|8000||ext-authz.foo.svc.cluster.local"
    assert service.server_uri.timeout.seconds == 600  # Istio's default
    assert service.path_prefix == "/check"
    assert [p.exact or p.prefix for p in config.allowed_headers.patterns] == [
        "x-ext-authz",
        "x-user-",
    ]
    assert service.authorization_response.allowed_upstream_headers.patterns[0].exact == "x-user"
    assert service.authorization_response.allowed_client_headers.patterns[0].exact == "x-reason"
    assert not config.failure_mode_allow
    assert config.status_on_error.code == 403


def test_grpc_provider_config() -> None:
    text = CUSTOM.replace("http-authz", "grpc-authz")
    _, ext = http(text, mesh=parse_mesh_config(MESH, "mesh.yaml"))
    config = ext_authz_of(ext)
    cluster = config.grpc_service.envoy_grpc.cluster_name
    assert cluster == "outbound|9000||authz.foo.svc.cluster.local"
    assert config.grpc_service.timeout.seconds == 1
    assert config.failure_mode_allow


@pytest.mark.parametrize("mesh", [None, MeshConfig()])
def test_custom_with_an_unknown_provider_denies_what_it_matches(mesh: MeshConfig | None) -> None:
    (f,) = http(CUSTOM, mesh=mesh)
    assert layout([f]) == ["DENY"]
    assert list(rules_of(f)) == ["ns[foo]-policy[ext]-rule[0]-provider[http-authz]"]


# --- TCP ----------------------------------------------------------------------------------------


def tcp_rules(text: str, port: int = 9000) -> list[tuple[str, list[str]]]:
    out = []
    for f in network_rbac_filters(authorization_policies(text), TD, port):
        config = network_rbac.RBAC()
        assert f.typed_config.Unpack(config)
        assert f.name == "envoy.filters.network.rbac"
        out.append((ACTIONS[config.rules.action], sorted(config.rules.policies)))
    return out


def test_tcp_allow_rule_with_http_fields_matches_nothing(caplog: pytest.LogCaptureFixture) -> None:
    text = allow("{to: [{operation: {methods: [GET]}}]}, {from: [{source: {namespaces: [a]}}]}")
    with caplog.at_level(logging.WARNING):
        assert tcp_rules(text) == [("ALLOW", ["ns[foo]-policy[p]-rule[1]"])]
    assert "ns[foo]-policy[p]-rule[0]: not enforced on TCP port 9000" in caplog.text


def test_tcp_deny_rule_drops_http_fields_and_so_denies_more() -> None:
    text = policy(
        "d", "{action: DENY, rules: [{to: [{operation: {ports: ['9000'], paths: ['/x']}}]}]}"
    )
    (f,) = network_rbac_filters(authorization_policies(text), TD, 9000)
    config = network_rbac.RBAC()
    f.typed_config.Unpack(config)
    rule = config.rules.policies["ns[foo]-policy[d]-rule[0]"]
    assert [p.any for p in rule.permissions] == [True]  # the whole port is denied


def test_tcp_ignores_custom_policies() -> None:
    assert tcp_rules(CUSTOM) == []
