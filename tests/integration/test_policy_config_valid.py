"""Real Envoy (`--mode validate`) accepts the generated jwt_authn, RBAC and ext_authz filters
for a policy set that uses every field and form Weft translates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from tests.integration.policy_envoy import (
    envoy_validate,
    http_listener,
    policy_bootstrap,
    static_cluster,
    tcp_listener,
)
from weft.api import (
    AuthorizationPolicy,
    RequestAuthentication,
    load_yaml,
    parse_mesh_config,
)
from weft.xds.authn import jwt_authn_filter
from weft.xds.authz import http_rbac_filters, network_rbac_filters

pytestmark = pytest.mark.integration

JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "k1",
                "x": "BnmZBBAKwz-TLZIwE92yxTq_N-urMVKp10MI2GCxjiY",
                "y": "PVR7p7njbYTwun79aoR0J1uj9xz6xSuf40Vm_gRpeTI",
            }
        ]
    }
)

MESH = """
trustDomain: example.org
extensionProviders:
- name: http-authz
  envoyExtAuthzHttp:
    service: foo/ext-authz.foo.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz, "x-prefix-*", "*-suffix"]
    includeAdditionalHeadersInCheck: {x-added: "yes"}
    includeRequestBodyInCheck: {maxRequestBytes: 4096, allowPartialMessage: true}
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnAllow: [x-trace]
    headersToDownstreamOnDeny: [x-reason, "*"]
- name: grpc-authz
  envoyExtAuthzGrpc:
    service: ext-authz-grpc.foo.svc.cluster.local
    port: 9000
    statusOnError: "599"
"""

POLICIES = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://issuer.example.com
    audiences: [app, other]
    jwks: 'JWKS'
    fromHeaders: [{name: x-jwt, prefix: "Token "}, {name: authorization, prefix: "Bearer "}]
    fromParams: [token]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-sub, claim: sub}, {header: x-group, claim: nested.group}]
    forwardOriginalToken: true
  - issuer: https://fetched.example.com
    jwksUri: https://fetched.example.com/keys
  - issuer: https://not-fetched.example.com
    jwksUri: https://not-fetched.example.com/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all-forms, namespace: foo}
spec:
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/sleep, "cluster.local/ns/a/*", "*/sa/b"]
        notPrincipals: [cluster.local/ns/default/sa/bad]
        requestPrincipals: ["https://issuer.example.com/alice", "https://issuer.example.com/*",
                            "*@example.com"]
        notRequestPrincipals: ["https://issuer.example.com/mallory"]
        namespaces: [default, "team-*", "*-prod"]
        notNamespaces: [kube-system]
        ipBlocks: [10.0.0.0/8, 192.168.1.1, "2001:db8::/32"]
        notIpBlocks: [10.1.0.0/16]
        remoteIpBlocks: [203.0.113.0/24]
        notRemoteIpBlocks: [203.0.113.9]
    to:
    - operation:
        hosts: [example.com, "*.example.com", "api.*", "example.com:8080"]
        notHosts: [admin.example.com]
        ports: ["8080", "9090"]
        notPorts: ["7070"]
        methods: [GET, POST]
        notMethods: [DELETE]
        paths: [/info, "/api/*", "*.css", "/items/{*}/detail", "/files/{**}"]
        notPaths: [/admin]
    when:
    - {key: "request.headers[x-version]", values: [v1, "v2*", "*-beta", "*"], notValues: [v0]}
    - {key: source.ip, values: [10.0.0.1]}
    - {key: remote.ip, notValues: [10.9.9.9/32]}
    - {key: source.namespace, values: [default]}
    - {key: source.principal, values: [cluster.local/ns/default/sa/sleep]}
    - {key: request.auth.principal, values: [https://issuer.example.com/alice]}
    - {key: request.auth.audiences, values: [app]}
    - {key: request.auth.presenter, values: [client-app]}
    - {key: "request.auth.claims[groups]", values: [admin, "eng-*"]}
    - {key: "request.auth.claims[nested][role]", notValues: [guest]}
    - {key: destination.ip, values: [127.0.0.1]}
    - {key: destination.port, values: ["8080"]}
    - {key: connection.sni, values: ["*.example.com"]}
    - {key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"]}
  - from:
    - source: {principals: ["*"], requestPrincipals: ["*"], namespaces: ["*"]}
    to:
    - operation: {hosts: ["*"], methods: ["*"], paths: ["*"]}
    when:
    - {key: "request.auth.claims[groups]", values: ["*"]}
  - {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-port-only, namespace: foo}
spec:
  rules: [{to: [{operation: {ports: ["1234"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {notNamespaces: [foo, default]}}]
    to: [{operation: {methods: [DELETE], paths: ["/private/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: foo}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/audited*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom-http, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: http-authz}
  rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom-grpc, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: grpc-authz}
  rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom-unknown, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: nobody}
  rules: [{to: [{operation: {methods: [PATCH]}}]}]
""".replace("'JWKS'", f"'{JWKS}'")


def test_envoy_accepts_every_security_field(tmp_path: Path) -> None:
    mesh = parse_mesh_config(MESH, "mesh.yaml")
    objects = load_yaml(POLICIES, "policies.yaml")
    authz = [o for o in objects if isinstance(o, AuthorizationPolicy)]
    authn = [o for o in objects if isinstance(o, RequestAuthentication)]

    jwt = jwt_authn_filter(authn, {"https://fetched.example.com/keys": JWKS})
    assert jwt is not None
    http = [jwt, *http_rbac_filters(authz, mesh.trust_domain, 8080, mesh=mesh)]
    tcp = network_rbac_filters(authz, mesh.trust_domain, 8080)
    # audit, two ext_authz (each behind its shadow RBAC), deny (with the unknown provider's
    # rules), allow; on TCP: audit, deny, allow.
    assert [f.name.rsplit(".", 1)[1] for f in http] == [
        "jwt_authn",
        "rbac",
        "rbac",
        "ext_authz",
        "rbac",
        "ext_authz",
        "rbac",
        "rbac",
    ]
    assert len(tcp) == 3

    boot = policy_bootstrap(
        [http_listener(http, 0), tcp_listener(tcp, 0)],
        [
            static_cluster("outbound|8000||ext-authz.foo.svc.cluster.local", 8000),
            static_cluster("outbound|9000||ext-authz-grpc.foo.svc.cluster.local", 9000, http2=True),
        ],
    )
    text = json.dumps(json_format.MessageToDict(boot))
    for feature in ("uriTemplate", "sourcedMetadata", "remoteIp", "requestedServerName"):
        assert feature in text, f"{feature} missing from the generated config"
    problem = envoy_validate(boot, tmp_path / "policies.json")
    assert problem is None, f"Envoy rejected the security filters: {problem}"
