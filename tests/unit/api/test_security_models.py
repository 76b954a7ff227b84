"""security.istio.io kinds and the mesh config: Istio-style YAML parses; bad input is refused
with the file, object, camelCase field path and a hint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from weft.api import (
    AuthorizationPolicy,
    MeshConfig,
    PeerAuthentication,
    RequestAuthentication,
    dump_yaml,
    load_mesh_config,
    load_yaml,
    parse_mesh_config,
)
from weft.errors import ConfigError

Errors = Callable[[str], list[str]]

JWKS = (
    '{"keys": [{"kty": "RSA", "e": "AQAB", "kid": "k1", '
    '"n": "xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV"}]}'
)


def one(text: str) -> object:
    (obj,) = load_yaml(text, "policy.yaml")
    return obj


# --- parsing Istio's documented shapes ------------------------------------------------------


def test_namespace_wide_strict_peer_authentication() -> None:
    pa = one("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  mtls: {mode: STRICT}
""")
    assert isinstance(pa, PeerAuthentication)
    assert pa.spec.mtls is not None and pa.spec.mtls.mode == "STRICT"
    assert pa.spec.match_labels is None


def test_workload_permissive_with_a_plain_text_port() -> None:
    pa = one("""
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: finance, namespace: foo}
spec:
  selector:
    matchLabels: {app: finance}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    8080: {mode: DISABLE}
""")
    assert isinstance(pa, PeerAuthentication)
    assert pa.api_version == "security.istio.io/v1beta1"
    assert pa.spec.match_labels == {"app": "finance"}
    assert pa.spec.port_level_mtls[8080].mode == "DISABLE"


def test_allow_policy_with_principals_methods_and_paths() -> None:
    ap = one("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector:
    matchLabels: {app: httpbin, version: v1}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/curl"]}
    - source: {namespaces: ["dev"]}
    to:
    - operation: {methods: ["GET"], paths: ["/info*"]}
    - operation: {methods: ["POST"], paths: ["/data"], ports: [8080]}
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.example.com"]
""")
    assert isinstance(ap, AuthorizationPolicy)
    rule = ap.spec.rules[0]
    assert rule.from_ is not None and rule.from_[1].source is not None
    assert rule.from_[1].source.namespaces == ["dev"]
    assert rule.to is not None and rule.to[1].operation is not None
    assert rule.to[1].operation.ports == ["8080"]  # a YAML number means the same port
    assert rule.when[0].key == "request.auth.claims[iss]"


def test_deny_policy_with_not_namespaces() -> None:
    ap = one("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-others, namespace: foo}
spec:
  action: DENY
  rules:
  - from:
    - source: {notNamespaces: ["foo"]}
""")
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.action == "DENY"
    assert ap.spec.rules[0].from_ is not None


def test_custom_policy_names_its_provider() -> None:
    ap = one("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: my-ext-authz}
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
""")
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.provider is not None and ap.spec.provider.name == "my-ext-authz"


def test_allow_nothing_policy_is_valid() -> None:
    ap = one("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: foo}
spec: {}
""")
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.action == "ALLOW" and ap.spec.rules == []


def test_target_refs_are_accepted() -> None:
    ap = one("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw, namespace: foo}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]
  rules: [{}]
""")
    assert isinstance(ap, AuthorizationPolicy)
    assert ap.spec.has_target_refs


def test_request_authentication_with_jwks_uri() -> None:
    ra = one("""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: "testing@secure.istio.io"
    jwksUri: "https://example.com/jwks.json"
    fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
    fromParams: [my_token]
    outputClaimToHeaders: [{header: x-jwt-claim-foo, claim: foo}]
    forwardOriginalToken: true
    timeout: 5s
""")
    assert isinstance(ra, RequestAuthentication)
    rule = ra.spec.jwt_rules[0]
    assert rule.jwks_uri == "https://example.com/jwks.json"
    assert rule.from_headers[0].prefix == "Bearer "
    assert rule.output_claim_to_headers[0].claim == "foo"
    assert rule.forward_original_token


def test_request_authentication_with_inline_jwks() -> None:
    ra = one(f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: foo}}
spec:
  jwtRules:
  - issuer: issuer-foo
    jwks: '{JWKS}'
    outputPayloadToHeader: x-jwt-payload
""")
    assert isinstance(ra, RequestAuthentication)
    assert ra.spec.jwt_rules[0].jwks == JWKS


def test_security_kinds_round_trip_through_yaml() -> None:
    text = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: foo}
spec:
  rules:
  - from: [{source: {notNamespaces: [foo]}}]
    to: [{operation: {notPorts: ["80"]}}]
"""
    objects = load_yaml(text, "a.yaml")
    dumped = dump_yaml(objects)
    assert "apiVersion: security.istio.io/v1\n" in dumped
    assert "- from:\n" in dumped and "notNamespaces:" in dumped
    assert load_yaml(dumped, "again.yaml") == objects


# --- validation, as a user sees it ----------------------------------------------------------


def ap(spec: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: authz, namespace: shop}}
spec:
{spec}"""


AP = "mesh.yaml: AuthorizationPolicy shop/authz: "


def test_networking_api_version_is_refused_for_security_kinds(errors_of: Errors) -> None:
    text = "apiVersion: networking.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
    assert errors_of(text) == [
        "mesh.yaml: PeerAuthentication default/p: apiVersion: 'networking.istio.io/v1' is not "
        "supported (use security.istio.io/v1; security.istio.io/v1beta1 is also accepted)"
    ]


def test_port_level_mtls_needs_a_selector(errors_of: Errors) -> None:
    text = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
    70000: {mode: DISABLE}
"""
    assert errors_of(text) == [
        "mesh.yaml: PeerAuthentication shop/default: spec.portLevelMtls: portLevelMtls needs a "
        "workload selector (add 'selector: {matchLabels: {...}}' naming the workloads whose "
        "ports these are)",
        "mesh.yaml: PeerAuthentication shop/default: spec.portLevelMtls.70000: port 70000 is "
        "out of range 1..65535 (use the workload's port number, such as 8080)",
    ]


def test_mtls_mode_typo(errors_of: Errors) -> None:
    text = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRCT}
"""
    assert errors_of(text) == [
        "mesh.yaml: PeerAuthentication shop/default: spec.mtls.mode: 'STRCT' is not one of "
        "'UNSET', 'DISABLE', 'PERMISSIVE' or 'STRICT' (did you mean 'STRICT'?)"
    ]


def test_custom_needs_a_provider_and_others_refuse_one(errors_of: Errors) -> None:
    assert errors_of(ap("  action: CUSTOM\n  rules: [{}]")) == [
        AP + "spec.provider: action CUSTOM needs a provider (add 'provider: {name: "
        "<extensionProviders name in the mesh config>}')"
    ]
    assert errors_of(ap("  action: DENY\n  provider: {name: x}\n  rules: [{}]")) == [
        AP + "spec.provider: provider is only used with action CUSTOM, not DENY "
        "(set 'action: CUSTOM', or drop provider)"
    ]


def test_ip_blocks_must_be_addresses(errors_of: Errors) -> None:
    text = ap("""
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/8, not-an-ip], notRemoteIpBlocks: [10.0.0.0/99]}}]
""")
    assert errors_of(text) == [
        AP + "spec.rules[0].from[0].source.ipBlocks[1]: 'not-an-ip' is not an IP address or "
        "CIDR block (use an address such as '10.0.0.1' or a block such as '10.0.0.0/16')",
        AP + "spec.rules[0].from[0].source.notRemoteIpBlocks[0]: '10.0.0.0/99' is not an IP "
        "address or CIDR block (use an address such as '10.0.0.1' or a block such as "
        "'10.0.0.0/16')",
    ]


def test_ports_must_be_port_numbers(errors_of: Errors) -> None:
    text = ap("""
  rules:
  - to: [{operation: {ports: ["80", "http"], notPorts: ["0"]}}]
""")
    hint = " (use a port number from 1 to 65535, written as a string such as '8080')"
    assert errors_of(text) == [
        AP + "spec.rules[0].to[0].operation.ports[1]: 'http' is not a port number" + hint,
        AP + "spec.rules[0].to[0].operation.notPorts[0]: '0' is not a port number" + hint,
    ]


def test_when_keys_must_be_istio_attributes(errors_of: Errors) -> None:
    text = ap("""
  rules:
  - when:
    - {key: request.headers, values: [a]}
    - {key: source.ip, values: [10.0.0.300]}
    - {key: "request.auth.claims[groups]"}
    - {key: destination.port, notValues: ["99999"]}
""")
    problems = errors_of(text)
    assert problems[0].startswith(
        AP + "spec.rules[0].when[0].key: 'request.headers' is not a supported attribute "
        "(use one of request.headers[NAME], source.ip,"
    )
    assert problems[1:] == [
        AP + "spec.rules[0].when[1].values[0]: '10.0.0.300' is not an IP address or CIDR block "
        "(use an address such as '10.0.0.1' or a block such as '10.0.0.0/16')",
        AP + "spec.rules[0].when[2]: condition on request.auth.claims[groups] has neither "
        "values nor notValues (list the values to match in 'values' (or to refuse in "
        "'notValues'))",
        AP + "spec.rules[0].when[3].notValues[0]: '99999' is not a port number (use a port "
        "number from 1 to 65535, written as a string such as '8080')",
    ]


@pytest.mark.parametrize(
    "key",
    [
        "request.headers[x-user]",
        "request.auth.claims[groups]",
        "request.auth.claims[nested][role]",
        "source.namespace",
        "source.principal",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "connection.sni",
        "experimental.envoy.filters.network.mysql_proxy[db.table]",
    ],
)
def test_every_istio_attribute_is_accepted(key: str) -> None:
    one(ap(f"  rules: [{{when: [{{key: '{key}', values: [x]}}]}}]"))


def test_empty_source_and_operation(errors_of: Errors) -> None:
    text = ap("""
  rules:
  - from: [{source: {}}]
    to: [{operation: {hosts: []}}]
  - from: []
""")
    assert errors_of(text) == [
        AP + "spec.rules[0].from[0].source: source is empty (set principals, namespaces, "
        "ipBlocks, ... or drop this entry)",
        AP + "spec.rules[0].to[0].operation: operation is empty (set hosts, ports, methods, "
        "paths, ... or drop this entry)",
        AP + "spec.rules[1].from: is an empty list (drop 'from' to match any source)",
    ]


def test_wildcards_only_at_either_end(errors_of: Errors) -> None:
    text = ap("""
  rules:
  - from: [{source: {principals: ["cluster.local/ns/*/sa/x"], namespaces: ["*foo*"]}}]
    to: [{operation: {paths: ["/a/*/b", "*"], hosts: [""]}}]
""")
    hint = " (" + "'*' may only stand alone, start a value ('*suffix') or end it ('prefix*'))"
    assert errors_of(text) == [
        AP + "spec.rules[0].from[0].source.principals[0]: 'cluster.local/ns/*/sa/x' uses '*' "
        "in a way Istio does not match" + hint,
        AP + "spec.rules[0].from[0].source.namespaces[0]: '*foo*' uses '*' in a way Istio "
        "does not match" + hint,
        AP + "spec.rules[0].to[0].operation.hosts[0]: is an empty string (remove it, or write "
        "the value to match)",
        AP + "spec.rules[0].to[0].operation.paths[0]: '/a/*/b' uses '*' in a way Istio does "
        "not match" + hint,
    ]


def test_path_templates_are_accepted_when_well_formed(errors_of: Errors) -> None:
    one(ap("  rules: [{to: [{operation: {paths: ['/api/{*}/items/{**}', '/{*}']}}]}]"))
    text = ap("  rules: [{to: [{operation: {paths: ['/a/{**}/b', '/a/{id}', '/x y/{*}']}}]}]")
    hint = (
        " (use '{*}' for one whole segment and '{**}' only as the last segment, "
        "e.g. '/api/{*}/items/{**}')"
    )
    assert errors_of(text) == [
        AP + "spec.rules[0].to[0].operation.paths[0]: '{**}' in '/a/{**}/b' is not the last "
        "segment" + hint,
        AP + "spec.rules[0].to[0].operation.paths[1]: segment '{id}' of '/a/{id}' is not "
        "exactly '{*}' or '{**}'" + hint,
        AP + "spec.rules[0].to[0].operation.paths[2]: segment 'x y' of path template "
        "'/x y/{*}' is empty or has characters a URL path segment cannot have "
        "(percent-encode other characters, e.g. '%20' for a space)",
    ]


def test_selector_and_target_refs_are_exclusive(errors_of: Errors) -> None:
    text = ap("""
  selector: {matchLabels: {app: a}}
  targetRef: {kind: Gateway, name: gw}
""")
    assert errors_of(text) == [
        AP + "spec.selector: sets both selector and targetRef(s) (select workloads with "
        "'selector', or attach to a Gateway with targetRefs, not both)"
    ]


def ra(rule: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: shop}}
spec:
  jwtRules:
  - {rule}"""


RA = "mesh.yaml: RequestAuthentication shop/jwt: spec.jwtRules[0]"


def test_jwt_rule_needs_an_issuer(errors_of: Errors) -> None:
    assert errors_of(ra("{jwksUri: 'https://a/k'}")) == [
        RA + ".issuer: required field 'issuer' is missing (add 'issuer')"
    ]


def test_jwks_and_jwks_uri_are_exclusive(errors_of: Errors) -> None:
    text = ra(f"{{issuer: a, jwksUri: 'https://a/k', jwks: '{JWKS}'}}")
    assert errors_of(text) == [
        RA + ": sets both jwks and jwksUri (keep one: inline keys in 'jwks', or where to "
        "fetch them in 'jwksUri')"
    ]


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        (
            "{not json",
            "jwks is not JSON: Expecting property name enclosed in double quotes "
            "at line 1, column 2",
        ),
        ('{"kty": "RSA"}', "jwks is not a JSON Web Key Set: it needs a 'keys' list"),
        ('{"keys": []}', "jwks has no keys"),
        ('{"keys": [{"kty": "EC", "crv": "P-256"}]}', "jwks keys[0] (EC) lacks x, y"),
        (
            '{"keys": [{"kty": "DSA"}]}',
            "jwks keys[0] has key type 'DSA'; expected one of RSA, EC, oct, OKP",
        ),
    ],
)
def test_jwks_must_be_a_key_set(errors_of: Errors, jwks: str, message: str) -> None:
    (problem,) = errors_of(ra(f"{{issuer: a, jwks: '{jwks}'}}"))
    assert problem.startswith(f"{RA}.jwks: {message} (paste the issuer's key set")


def test_jwks_uri_and_output_headers(errors_of: Errors) -> None:
    text = ra(
        "{issuer: a, jwksUri: 'file:///keys', outputPayloadToHeader: 'bad header', "
        "outputClaimToHeaders: [{header: ':path', claim: sub}]}"
    )
    hint = " (use a header name of letters, digits and '-', such as 'x-jwt-payload')"
    assert errors_of(text) == [
        RA + ".jwksUri: 'file:///keys' is not an http(s) URL (use a URL such as "
        "'https://example.com/.well-known/jwks.json')",
        RA + ".outputPayloadToHeader: 'bad header' is not a valid HTTP header name" + hint,
        RA + ".outputClaimToHeaders[0].header: ':path' is not a valid HTTP header name" + hint,
    ]


def test_unknown_field_names_the_close_istio_field(errors_of: Errors) -> None:
    text = ra("{issuer: a, jwksURI: 'https://a/k'}")
    assert errors_of(text) == [RA + ".jwksURI: unknown field 'jwksURI' (did you mean 'jwksUri'?)"]


# --- mesh config ------------------------------------------------------------------------------

MESH = """
trustDomain: prod.example.com
rootNamespace: mesh-root
enableAutoMtls: false
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
defaultConfig:
  holdApplicationUntilProxyStarts: true
accessLogFile: /dev/stdout
enableTracing: true
extensionProviders:
- name: my-ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    timeout: 2s
    statusOnError: "500"
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToUpstreamOnAllow: [x-user]
- name: grpc-authz
  envoyExtAuthzGrpc: {service: foo/authz.foo.svc.cluster.local, port: 9000, failOpen: true}
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
"""


def test_mesh_config_defaults() -> None:
    mesh = MeshConfig()
    assert mesh.trust_domain == "cluster.local"
    assert mesh.root_namespace == "istio-system"
    assert mesh.enable_auto_mtls is True
    assert mesh.outbound_traffic_policy.mode == "ALLOW_ANY"
    assert mesh.warnings == ()


def test_mesh_config_parses_and_lists_what_it_ignores(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH)
    mesh = load_mesh_config(path)
    assert mesh.trust_domain == "prod.example.com"
    assert mesh.root_namespace == "mesh-root"
    assert mesh.default_config == {"holdApplicationUntilProxyStarts": True}
    http = mesh.extension_providers[0].envoy_ext_authz_http
    assert http is not None and http.status_on_error == 500 and http.port == 8000
    grpc = mesh.provider("grpc-authz")
    assert grpc is not None and grpc.envoy_ext_authz_grpc is not None
    assert mesh.provider("nope") is None
    assert mesh.warnings == (
        "unknown field 'accessLogFile' is ignored (Weft does not use this mesh setting)",
        "unknown field 'enableTracing' is ignored (Weft does not use this mesh setting)",
        "extensionProviders[2].zipkin: provider kind 'zipkin' is not used by Weft",
    )


def test_mesh_config_from_istio_config_map() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: |-\n"
    text += "".join(f"    {line}\n" for line in MESH.strip().splitlines())
    assert parse_mesh_config(text, "cm.yaml").trust_domain == "prod.example.com"


def mesh_errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_mesh_config(text, "mesh.yaml")
    return [str(p) for p in info.value.problems]


def test_mesh_config_errors_name_the_field() -> None:
    text = """
trustDomain: "spiffe://x"
rootNamespace: Istio_System
extensionProviders:
- name: a
  envoyExtAuthzHttp: {service: "bad host!", port: 0, statusOnError: nope, timeout: 5}
- name: a
  envoyExtAuthzHttp: {service: ok.svc, port: 80, pathPrefix: check}
  envoyExtAuthzGrpc: {service: ok.svc, port: 80}
"""
    assert mesh_errors(text) == [
        "mesh.yaml: MeshConfig: extensionProviders[0].envoyExtAuthzHttp.port: port 0 is out "
        "of range 1..65535 (use a port number from 1 to 65535)",
        "mesh.yaml: MeshConfig: extensionProviders[0].envoyExtAuthzHttp.timeout: duration "
        'must be a string with a unit, got 5 (write a number followed by a unit: "10s", '
        '"1.5s", "100ms", "1m", "1h30m")',
        "mesh.yaml: MeshConfig: extensionProviders[0].envoyExtAuthzHttp.statusOnError: 'nope' "
        "is not an HTTP status code (use a status code from 100 to 599, such as '403' or "
        "'500')",
    ]
    text = text.replace("port: 0, statusOnError: nope, timeout: 5", "port: 1")
    problems = mesh_errors(text)
    assert problems[:2] == [
        "mesh.yaml: MeshConfig: trustDomain: 'spiffe://x' is not a trust domain (use a "
        "DNS-like name such as 'cluster.local' or 'prod.example.com')",
        "mesh.yaml: MeshConfig: rootNamespace: 'Istio_System' is not a namespace name (use "
        "lower-case letters, digits and '-', such as 'istio-system')",
    ]
    assert problems[2].startswith(
        "mesh.yaml: MeshConfig: extensionProviders[0].envoyExtAuthzHttp.service: "
    )
    assert problems[3:] == [
        "mesh.yaml: MeshConfig: extensionProviders[1].name: provider name 'a' is already used "
        "by extensionProviders[0] (give each provider a unique name)",
        "mesh.yaml: MeshConfig: extensionProviders[1]: sets 2 provider kinds "
        "(envoyExtAuthzHttp, envoyExtAuthzGrpc); a provider takes exactly one (keep one of "
        "envoyExtAuthzHttp, envoyExtAuthzGrpc, ... per provider)",
        "mesh.yaml: MeshConfig: extensionProviders[1].envoyExtAuthzHttp.pathPrefix: path "
        "prefix 'check' does not start with '/' (write it as '/check')",
    ]


def test_mesh_config_typo_inside_a_provider_is_an_error() -> None:
    text = "extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 1, "
    text += "failopen: true}\n"
    assert mesh_errors(text) == [
        "mesh.yaml: MeshConfig: extensionProviders[0].envoyExtAuthzHttp.failopen: unknown "
        "field 'failopen' (did you mean 'failOpen'?)"
    ]


def test_unreadable_mesh_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_mesh_config(tmp_path / "missing.yaml")
    assert str(info.value) == (
        f"{tmp_path / 'missing.yaml'}: MeshConfig: cannot read mesh config: No such file or "
        "directory (point at a readable UTF-8 YAML file)"
    )
