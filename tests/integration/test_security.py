"""Secure by default, through real Envoy: automatic mTLS, identities, PeerAuthentication."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import MeshClient, apply_and_sync, bookinfo_spec
from weft.agent.identity import generate_key, key_pem, make_csr
from weft.ca.authority import CertificateAuthority
from weft.ca.identity import SpiffeId
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration

RATINGS = "http://ratings:9080/headers"


@pytest.fixture
async def pair(mesh: LocalMesh) -> MeshClient:
    """productpage (the client) and ratings (the server), both with sidecars."""
    specs = [bookinfo_spec("productpage"), bookinfo_spec("ratings")]
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=2)
    client = MeshClient(mesh, "productpage-v1")
    yield client  # type: ignore[misc]
    await client.close()


async def seen_headers(client: MeshClient, url: str = RATINGS) -> dict[str, str]:
    status, _, body = await client.get(url)
    assert status == 200, body
    headers: dict[str, str] = json.loads(body)["headers"]
    return {k.lower(): v for k, v in headers.items()}


async def direct(mesh: LocalMesh, key: str) -> int | str:
    """A plaintext request straight to a sidecar's inbound port, bypassing the mesh."""
    port = mesh.specs[key].inbound_port
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(
                f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp,
        ):
            return resp.status
    except (aiohttp.ClientError, TimeoutError) as e:
        return type(e).__name__


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_sidecars_use_mtls_and_the_app_sees_its_callers_identity(
    pair: MeshClient,
) -> None:
    headers = await seen_headers(pair)
    xfcc = headers.get("x-forwarded-client-cert", "")
    assert "URI=spiffe://cluster.local/ns/default/sa/productpage" in xfcc, headers


async def test_strict_mtls_refuses_plaintext_but_keeps_mesh_traffic(
    mesh: LocalMesh, pair: MeshClient, tmp_path: Path
) -> None:
    # PERMISSIVE by default: plaintext from outside the mesh is still accepted.
    assert await direct(mesh, "ratings-v1") == 200
    strict = write(
        tmp_path,
        "strict.yaml",
        """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
""",
    )
    await apply_and_sync(mesh, strict)
    assert await direct(mesh, "ratings-v1") != 200
    assert "spiffe://" in (await seen_headers(pair)).get("x-forwarded-client-cert", "")


async def test_peer_authentication_disable_falls_back_to_plaintext(
    mesh: LocalMesh, pair: MeshClient, tmp_path: Path
) -> None:
    disable = write(
        tmp_path,
        "disable.yaml",
        """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings-plain, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  mtls: {mode: DISABLE}
""",
    )
    await apply_and_sync(mesh, disable)
    # The client sees the server's mode and sends plaintext: no identity reaches the app.
    assert "x-forwarded-client-cert" not in await seen_headers(pair)
    assert await direct(mesh, "ratings-v1") == 200


def client_context(ca: CertificateAuthority, tmp_path: Path, name: str) -> ssl.SSLContext:
    """A TLS client presenting a certificate for productpage's identity issued by `ca`."""
    key = generate_key()
    uri = "spiffe://cluster.local/ns/default/sa/productpage"
    chain = ca.sign_csr(make_csr(key, uri), SpiffeId.parse(uri))
    (tmp_path / f"{name}.pem").write_text("".join(chain[:-1]))
    (tmp_path / f"{name}.key").write_text(key_pem(key))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we test the server's check of us, not ours of it
    context.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
    context.set_alpn_protocols(["istio"])
    return context


async def tls_get(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: ratings\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 5)
    finally:
        writer.close()


async def test_a_certificate_from_another_ca_is_refused(
    mesh: LocalMesh, pair: MeshClient, tmp_path: Path
) -> None:
    port = mesh.specs["ratings-v1"].inbound_port
    # The mesh's own CA (read from the control plane's state dir) gets through...
    mesh_ca = CertificateAuthority.load_or_create(mesh.config_dir / ".weft-state")
    assert (await tls_get(port, client_context(mesh_ca, tmp_path, "good"))).startswith(
        b"HTTP/1.1 200"
    )
    # ...a CA of the same trust domain issuing the very same identity does not.
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError, AssertionError)):
        answer = await tls_get(port, client_context(rogue, tmp_path, "rogue"))
        assert answer.startswith(b"HTTP/1.1 200"), answer


async def test_a_server_with_another_identity_is_refused(
    mesh: LocalMesh, pair: MeshClient, tmp_path: Path
) -> None:
    """The client checks the server's SPIFFE ID: ISTIO_MUTUAL naming someone else fails."""
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: ratings, namespace: default}}
spec:
  host: ratings
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/{sa}"]}}
"""
    await apply_and_sync(mesh, write(tmp_path, "wrong.yaml", rule.format(sa="someone-else")))
    status, _, _ = await pair.get(RATINGS)
    assert status == 503
    await apply_and_sync(mesh, write(tmp_path, "right.yaml", rule.format(sa="ratings")))
    status, _, _ = await pair.get(RATINGS)
    assert status == 200
