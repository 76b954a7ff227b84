"""Requests through real Envoy running the generated jwt_authn, ext_authz and RBAC filters get
the answers Istio's semantics promise: 401 for a bad token, 403 for what no ALLOW rule
matches or a DENY rule matches, and the ext_authz service asked only about CUSTOM paths."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.integration.policy_envoy import (
    http_listener,
    policy_bootstrap,
    static_cluster,
    write_bootstrap,
)
from weft.agent.envoy import envoy_binary
from weft.agent.ports import free_port
from weft.api import AuthorizationPolicy, RequestAuthentication, load_yaml, parse_mesh_config
from weft.xds.authn import jwt_authn_filter
from weft.xds.authz import http_rbac_filters

pytestmark = pytest.mark.integration

ISSUER = "https://issuer.test"
START_TIMEOUT_S = 20.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """Signs ES256 tokens; `jwks` is its public key set."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwks = json.dumps(
            {
                "keys": [
                    {
                        "kty": "EC",
                        "crv": "P-256",
                        "kid": "k1",
                        "alg": "ES256",
                        "x": _b64(numbers.x.to_bytes(32, "big")),
                        "y": _b64(numbers.y.to_bytes(32, "big")),
                    }
                ]
            }
        )

    def token(self, **claims: Any) -> str:
        header = _b64(json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"}).encode())
        body = {"iss": ISSUER, "exp": int(time.time()) + 600, **claims}
        payload = _b64(json.dumps(body).encode())
        der = self.key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


MESH = """
extensionProviders:
- name: ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: %(port)d
    includeRequestHeadersInCheck: [x-ext-allow]
"""

POLICIES = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: %(issuer)s
    jwks: '%(jwks)s'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: foo}
spec:
  rules:
  - to: [{operation: {paths: ["/open*", "/custom/*"]}}]
  - from: [{source: {requestPrincipals: ["%(issuer)s/alice"]}}]
    to: [{operation: {paths: ["/jwt"]}}]
  - from: [{source: {requestPrincipals: ["%(issuer)s/team-*"]}}]
    to: [{operation: {paths: ["/prefix"]}}]
  - from: [{source: {requestPrincipals: ["*.test/x@corp.test"]}}]
    to: [{operation: {paths: ["/suffix"]}}]
  - from: [{source: {requestPrincipals: ["*"], notRequestPrincipals: ["*/mallory"]}}]
    to: [{operation: {paths: ["/any-token"]}}]
  - to: [{operation: {paths: ["/admins"]}}]
    when: [{key: "request.auth.claims[groups]", values: [admin]}]
  - to: [{operation: {paths: ["/header"], methods: [GET]}}]
    when: [{key: "request.headers[x-token]", values: ["let-me-*"]}]
  - to: [{operation: {paths: ["/elsewhere"], ports: ["9999"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: foo}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/open/secret"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: custom, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: ext-authz}
  rules: [{to: [{operation: {paths: ["/custom/*"]}}]}]
"""


class AuthzService:
    """An HTTP ext_authz service: allows requests carrying x-ext-allow: yes."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        allowed = request.headers.get("x-ext-allow") == "yes"
        return web.Response(status=200 if allowed else 403)


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"Envoy exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"Envoy did not listen on {port} within {START_TIMEOUT_S}s")


class Mesh:
    def __init__(self, port: int, authz: AuthzService, issuer: Issuer) -> None:
        self.port = port
        self.authz = authz
        self.issuer = issuer
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )

    async def status(self, path: str, token: str | None = None, **headers: str) -> int:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.get(f"http://127.0.0.1:{self.port}{path}", headers=sent) as r:
            return r.status


@pytest_asyncio.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    issuer = Issuer()
    authz = AuthzService()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", authz.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    authz_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", authz_port).start()

    mesh_config = parse_mesh_config(MESH % {"port": authz_port}, "mesh.yaml")
    objects = load_yaml(POLICIES % {"issuer": ISSUER, "jwks": issuer.jwks}, "policies.yaml")
    jwt = jwt_authn_filter([o for o in objects if isinstance(o, RequestAuthentication)], {})
    assert jwt is not None
    authz_policies = [o for o in objects if isinstance(o, AuthorizationPolicy)]
    filters = [jwt, *http_rbac_filters(authz_policies, "cluster.local", 8080, mesh=mesh_config)]
    port = free_port()
    cluster = f"outbound|{authz_port}||ext-authz.foo.svc.cluster.local"
    boot = policy_bootstrap([http_listener(filters, port)], [static_cluster(cluster, authz_port)])
    path = write_bootstrap(boot, tmp_path / "envoy.json")
    proc = await asyncio.create_subprocess_exec(
        str(envoy_binary()),
        "-c",
        str(path),
        "--use-dynamic-base-id",
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    client = Mesh(port, authz, issuer)
    try:
        await _wait_listening(port, proc)
        yield client
    finally:
        await client.session.close()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=10)
        await runner.cleanup()


async def test_allow_and_deny(mesh: Mesh) -> None:
    assert await mesh.status("/open/page") == 200
    assert await mesh.status("/nowhere") == 403  # ALLOW policies exist, none matches
    assert await mesh.status("/open/secret") == 403  # DENY beats ALLOW
    assert await mesh.status("/elsewhere") == 403  # its rule is for another port
    assert await mesh.status("/header", x_token="let-me-in") == 200
    assert await mesh.status("/header", x_token="no") == 403


async def test_request_principals_and_claims(mesh: Mesh) -> None:
    alice = mesh.issuer.token(sub="alice", groups=["admin", "dev"])
    bob = mesh.issuer.token(sub="bob", groups="admin")
    carol = mesh.issuer.token(sub="carol", groups=["dev"])
    assert await mesh.status("/jwt") == 403  # no token: authentication passes, ALLOW does not
    assert await mesh.status("/jwt", alice) == 200
    assert await mesh.status("/jwt", bob) == 403
    assert await mesh.status("/admins", alice) == 200  # a list claim containing admin
    assert await mesh.status("/admins", bob) == 200  # a string claim equal to admin
    assert await mesh.status("/admins", carol) == 403


async def test_request_principal_wildcards(mesh: Mesh) -> None:
    def token(sub: str) -> str:
        return mesh.issuer.token(sub=sub)

    assert await mesh.status("/prefix", token("team-a")) == 200
    assert await mesh.status("/prefix", token("a-team")) == 403
    # "*.test/x@corp.test": the suffix spans the '/' between issuer and subject.
    assert await mesh.status("/suffix", token("x@corp.test")) == 200
    assert await mesh.status("/suffix", token("y@corp.test")) == 403
    assert await mesh.status("/any-token", token("anyone")) == 200
    assert await mesh.status("/any-token", token("mallory")) == 403
    assert await mesh.status("/any-token") == 403


async def test_invalid_tokens_are_refused(mesh: Mesh) -> None:
    other = Issuer().token(sub="alice")  # right issuer name, wrong key
    assert await mesh.status("/open/page", "not-a-jwt") == 401
    assert await mesh.status("/open/page", other) == 401
    expired = mesh.issuer.token(sub="alice", exp=int(time.time()) - 3600)
    assert await mesh.status("/open/page", expired) == 401


async def test_ext_authz_is_asked_only_for_custom_paths(mesh: Mesh) -> None:
    assert await mesh.status("/custom/a") == 403
    assert await mesh.status("/custom/b", x_ext_allow="yes") == 200
    assert await mesh.status("/open/page") == 200
    assert mesh.authz.asked == ["/custom/a", "/custom/b"]
