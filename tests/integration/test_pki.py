"""The mesh under an existing PKI (plugged-in CA), RSA workload keys, and JWKS fetched by the
control plane from a jwksUri."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.conftest import MeshClient, apply_and_sync, bookinfo_spec
from tests.integration.test_certificates import secrets
from tests.unit.ca.pki import make_ca, write_plugged
from weft.cli.jwt_issuer import JwtIssuer
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration

RATINGS = "http://ratings:9080/ratings/0"


async def start_pair(mesh: LocalMesh, *extra: str) -> MeshClient:
    specs = [bookinfo_spec("productpage"), bookinfo_spec("ratings")]
    for spec in specs:
        spec.extra_args += list(extra)
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=2)
    return MeshClient(mesh, "productpage-v1")


async def test_plugged_in_ca_with_an_intermediate(tmp_path: Path) -> None:
    root = make_ca("Example Corp Root")
    intermediate = make_ca("Example Corp Mesh CA", issuer=root)
    plugged = write_plugged(
        tmp_path / "pki", intermediate[0], intermediate[1], [intermediate[0], root[0]], [root[0]]
    )
    mesh = LocalMesh(tmp_path / "mesh")
    try:
        await mesh.start_control_plane(extra_args=["--ca-dir", str(plugged)])
        client = await start_pair(mesh)
        try:
            status, _, _ = await client.get(RATINGS)
            assert status == 200
        finally:
            await client.close()
        held = secrets(mesh, "ratings")
        # Envoy presents leaf + intermediate and trusts the corporate root.
        issuers = {c["secret"]: c for c in held}
        assert "ROOTCA" in issuers and "default" in issuers
        ca_serials = {c["serial_number"] for c in held if c["secret"] == "ROOTCA"}
        assert (
            ca_serials == {format(root[0].serial_number, "x").rjust(2, "0")} or len(ca_serials) == 1
        )
        chain = [c for c in held if c["secret"] == "default"]
        assert any("spiffe://cluster.local/ns/default/sa/ratings" in json.dumps(c) for c in chain)
    finally:
        await mesh.stop()


async def test_rsa_workload_keys(mesh: LocalMesh) -> None:
    client = await start_pair(mesh, "--key-type", "RSA")
    try:
        status, _, _ = await client.get(RATINGS)
        assert status == 200
        # The certificate Envoy serves carries an RSA 2048 key.
        spec = mesh.specs["ratings-v1"]
        admin = spec.extra_args[spec.extra_args.index("--admin-port") + 1]
        async with mesh.session.get(
            f"http://127.0.0.1:{admin}/config_dump", params={"resource": "dynamic_active_secrets"}
        ) as resp:
            dump = await resp.json()
        chains = [
            s["secret"]["tls_certificate"]["certificate_chain"]
            for s in dump["configs"]
            if s["name"] == "default"
        ]
        pem = chains[0].get("inline_string") or base64.b64decode(chains[0]["inline_bytes"]).decode()
        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    finally:
        await client.close()


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, JwtIssuer, list[int]]]:
    """An issuer's JWKS over HTTP on 127.0.0.1, counting fetches."""
    issuer = JwtIssuer("https://issuer.weft.test")
    fetches: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(1)
            body = issuer.jwks.encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/keys", issuer, fetches
    finally:
        server.shutdown()
        server.server_close()


async def test_jwks_uri_is_fetched_by_the_control_plane(
    mesh: LocalMesh, tmp_path: Path, jwks_server: tuple[str, JwtIssuer, list[int]]
) -> None:
    uri, issuer, fetches = jwks_server
    client = await start_pair(mesh)
    try:
        rule = tmp_path / "jwt.yaml"
        rule.write_text(
            f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ratings-jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  jwtRules:
  - issuer: {issuer.issuer}
    jwksUri: {uri}
"""
        )
        await apply_and_sync(mesh, rule)
        good = {"authorization": f"Bearer {issuer.token('alice')}"}
        forged = {"authorization": f"Bearer {JwtIssuer(issuer.issuer).token('alice')}"}
        # The keys arrive after the fetch; until then every token is refused.
        deadline = asyncio.get_running_loop().time() + 15
        while (await client.get(RATINGS, good))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, "keys never arrived"
            await asyncio.sleep(0.2)
        assert fetches, "the control plane never fetched the JWKS"
        assert (await client.get(RATINGS, forged))[0] == 401
    finally:
        await client.close()
