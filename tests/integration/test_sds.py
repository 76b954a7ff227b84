"""The agent's certificate side against a TLS gRPC CA and real Envoys doing mTLS over SDS."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from weft.agent.caclient import DEFAULT_SERVER_NAME, CaClient, CaRefused, CaUnavailable
from weft.agent.certs import Signer, WorkloadCertificates
from weft.agent.envoy import EnvoyProcess
from weft.agent.identity import CertInfo, generate_key, key_pem, make_csr, parse_chain
from weft.agent.ports import free_port
from weft.agent.sds import (
    ROOT_SECRET,
    SECRET_TYPE,
    WORKLOAD_SECRET,
    SdsServer,
    sds_cluster,
    sds_secret_config,
)
from weft.ca import proto
from weft.errors import WeftError

from ..unit.agent.test_identity import SigningCa

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/productpage"
SERVER_ID = "spiffe://cluster.local/ns/default/sa/ratings"
TOKENS = {"productpage-token": CLIENT_ID, "ratings-token": SERVER_ID}
TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _value(check()):
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.02)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else bool(result)


# -- the CA: Istio's signing API over TLS, identity from the caller's token ------------------


class CaServer:
    def __init__(self, ca: SigningCa) -> None:
        self.ca = ca
        self.requests: list[tuple[str, int]] = []
        key, cert = ca.serving_cert(DEFAULT_SERVER_NAME)
        self._server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._create,
            request_deserializer=proto.IstioCertificateRequest.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(proto.SERVICE, {"CreateCertificate": handler}),)
        )
        credentials = grpc.ssl_server_credentials([(key.encode(), cert.encode())])
        self.port = self._server.add_secure_port(f"{HOST}:0", credentials)

    async def _create(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        header = dict(context.invocation_metadata()).get("authorization", "")
        identity = TOKENS.get(str(header).removeprefix("Bearer "))
        if identity is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is unknown")
        self.requests.append((str(identity), int(request.validity_duration)))
        chain = self.ca.issue(request.csr, request.validity_duration, uri=identity)
        return proto.IstioCertificateResponse(cert_chain=chain)

    def client(self, token: str, roots: list[str] | None = None) -> CaClient:
        return CaClient((HOST, self.port), roots or [self.ca.root_pem], lambda: token, timeout=5)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(0)


@pytest.fixture
async def ca_server() -> AsyncIterator[CaServer]:
    server = CaServer(SigningCa("Weft Mesh Root"))
    await server.start()
    yield server
    await server.stop()


# -- the app behind the server's Envoy: echoes the request headers ---------------------------


@pytest.fixture
def echo_app() -> Iterator[int]:
    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


# -- agents and Envoys -----------------------------------------------------------------------


@dataclass
class Agent:
    certs: WorkloadCertificates
    sds: SdsServer
    task: asyncio.Task[None]
    issued: list[CertInfo] = field(default_factory=list)

    def leaf(self) -> CertInfo:
        current = self.certs.current()
        assert current is not None
        return parse_chain(current[1])[0]


class Harness:
    """Everything a test started; `close` stops it all."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        # Unix socket paths are short (108 bytes); pytest's tmp_path can be longer.
        self.sockets = Path(tempfile.mkdtemp(prefix="weft-sds-"))
        self.agents: list[Agent] = []
        self.envoys: list[EnvoyProcess] = []
        self.clients: list[CaClient] = []

    async def agent(
        self, name: str, spiffe: str, sign: Signer, ttl: float = 3600.0, **options: Any
    ) -> Agent:
        certs = WorkloadCertificates(spiffe, sign, requested_ttl=ttl, **options)
        sds = SdsServer(certs, self.sockets / f"{name}.sock")
        await sds.start()
        agent = Agent(certs, sds, asyncio.create_task(certs.run()))
        certs.subscribe(lambda: _record_leaf(agent))
        self.agents.append(agent)
        await asyncio.wait_for(certs.issued.wait(), 10)
        return agent

    async def envoy(self, bootstrap: dict[str, Any]) -> EnvoyProcess:
        # Admin port 0: Envoy picks one and EnvoyProcess reads it back, so it cannot clash.
        envoy = EnvoyProcess(bootstrap, self.tmp_path / f"envoy-{len(self.envoys)}", 0)
        self.envoys.append(envoy)
        await envoy.start(timeout=15, live=True)
        return envoy

    async def close(self) -> None:
        for envoy in self.envoys:
            await envoy.stop()
        for agent in self.agents:
            agent.task.cancel()
            await asyncio.gather(agent.task, return_exceptions=True)
            await agent.sds.stop()
        for client in self.clients:
            await client.close()
        shutil.rmtree(self.sockets, ignore_errors=True)


def _record_leaf(agent: Agent) -> None:
    leaf = agent.leaf()
    if not agent.issued or agent.issued[-1] != leaf:
        agent.issued.append(leaf)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        await h.close()


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": HOST, "port_value": port}}


def _cluster(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
        **extra,
    }


def _hcm(name: str, cluster: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{HCM}.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {
                "name": name,
                "virtual_hosts": [
                    {
                        "name": name,
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
            ],
            **extra,
        },
    }


def server_transport_socket() -> dict[str, Any]:
    """Inbound mTLS: present `default`, require a client cert that chains to `ROOTCA`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"{TLS}.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_params": {
                    "tls_minimum_protocol_version": "TLSv1_2",
                    "tls_maximum_protocol_version": "TLSv1_3",
                },
                "tls_certificate_sds_secret_configs": [sds_secret_config(WORKLOAD_SECRET)],
                "validation_context_sds_secret_config": sds_secret_config(ROOT_SECRET),
            },
        },
    }


def client_transport_socket(server_id: str) -> dict[str, Any]:
    """Outbound mTLS: present `default`, accept only `server_id` chaining to `ROOTCA`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"{TLS}.UpstreamTlsContext",
            "sni": "outbound_.9080_._.ratings.default.svc.cluster.local",
            "common_tls_context": {
                # Envoy's client side stops at TLS 1.2 unless told otherwise.
                "tls_params": {"tls_maximum_protocol_version": "TLSv1_3"},
                "tls_certificate_sds_secret_configs": [sds_secret_config(WORKLOAD_SECRET)],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": server_id}}
                        ]
                    },
                    "validation_context_sds_secret_config": sds_secret_config(ROOT_SECRET),
                },
            },
        },
    }


def server_bootstrap(port: int, app_port: int, sds: SdsServer) -> dict[str, Any]:
    hcm = _hcm(
        "inbound",
        "app",
        forward_client_cert_details="SANITIZE_SET",
        set_current_client_cert_details={"uri": True},
    )
    return {
        "node": {"id": "ratings", "cluster": "ratings.default"},
        "static_resources": {
            "listeners": [
                {
                    "name": "inbound",
                    "address": _address(port),
                    "filter_chains": [
                        {"transport_socket": server_transport_socket(), "filters": [hcm]}
                    ],
                }
            ],
            "clusters": [_cluster("app", app_port), sds_cluster(sds.socket_path)],
        },
    }


def client_bootstrap(
    port: int, server_port: int, sds: SdsServer, server_id: str = SERVER_ID
) -> dict[str, Any]:
    upstream = _cluster(
        "ratings",
        server_port,
        transport_socket=client_transport_socket(server_id),
        # One request per connection: every request is a new handshake with the current cert.
        typed_extension_protocol_options={
            HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                "common_http_protocol_options": {"max_requests_per_connection": 1},
                "explicit_http_config": {"http_protocol_options": {}},
            }
        },
    )
    return {
        "node": {"id": "productpage", "cluster": "productpage.default"},
        "static_resources": {
            "listeners": [
                {
                    "name": "outbound",
                    "address": _address(port),
                    "filter_chains": [{"filters": [_hcm("outbound", "ratings")]}],
                }
            ],
            "clusters": [upstream, sds_cluster(sds.socket_path)],
        },
    }


@dataclass
class Mesh:
    client: Agent
    server: Agent
    client_envoy: EnvoyProcess
    server_envoy: EnvoyProcess
    client_port: int
    server_port: int


@pytest.fixture
def client_ttl() -> float:
    """The client's certificate lifetime; a test that wants rotation parametrizes it."""
    return 3600.0


@pytest.fixture
async def mesh(harness: Harness, ca_server: CaServer, echo_app: int, client_ttl: float) -> Mesh:
    ca_client = ca_server.client("productpage-token")
    ca_server_side = ca_server.client("ratings-token")
    harness.clients += [ca_client, ca_server_side]
    server = await harness.agent("ratings", SERVER_ID, ca_server_side.create_certificate)
    client = await harness.agent(
        "productpage", CLIENT_ID, ca_client.create_certificate, ttl=client_ttl
    )
    server_port, client_port = free_port(), free_port()
    server_envoy = await harness.envoy(server_bootstrap(server_port, echo_app, server.sds))
    client_envoy = await harness.envoy(client_bootstrap(client_port, server_port, client.sds))
    return Mesh(client, server, client_envoy, server_envoy, client_port, server_port)


async def get(session: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, str]]:
    async with session.get(f"http://{HOST}:{port}/", timeout=aiohttp.ClientTimeout(total=5)) as r:
        text = await r.text()
        return r.status, json.loads(text) if r.status == 200 else {"body": text}


def xfcc(headers: dict[str, str]) -> dict[str, str]:
    """x-forwarded-client-cert as a dict (one element, no quoted commas in our values)."""
    parts = (item.split("=", 1) for item in headers["x-forwarded-client-cert"].split(";"))
    return {key: value.strip('"') for key, value in parts}


# -- tests: the CA client --------------------------------------------------------------------


async def test_ca_client_gets_a_chain_over_tls(ca_server: CaServer, harness: Harness) -> None:
    client = ca_server.client("ratings-token")
    harness.clients.append(client)
    chain = await client.create_certificate(make_csr(generate_key(), SERVER_ID), 600)
    leaf, root = parse_chain(chain)
    assert leaf.uri_sans == (SERVER_ID,)
    assert leaf.lifetime() == 600
    assert root.self_signed and chain[-1].strip() == ca_server.ca.root_pem.strip()
    assert ca_server.requests == [(SERVER_ID, 600)]


async def test_ca_client_reports_a_refusal_with_the_servers_message(
    ca_server: CaServer, harness: Harness
) -> None:
    client = ca_server.client("stolen-token")
    harness.clients.append(client)
    with pytest.raises(CaRefused, match="UNAUTHENTICATED") as caught:
        await client.create_certificate(make_csr(generate_key(), SERVER_ID), 600)
    assert caught.value.message == "the bearer token is unknown"
    assert caught.value.code == "UNAUTHENTICATED"


async def test_ca_client_unavailable_until_it_trusts_the_cas_tls_cert(
    ca_server: CaServer, harness: Harness
) -> None:
    client = ca_server.client("ratings-token", roots=[SigningCa("Someone Else").root_pem])
    harness.clients.append(client)
    csr = make_csr(generate_key(), SERVER_ID)
    with pytest.raises(CaUnavailable, match="UNAVAILABLE"):
        await client.create_certificate(csr, 600)

    client.update_roots([ca_server.ca.root_pem])
    assert len(await client.create_certificate(csr, 600)) == 2


async def test_ca_client_nothing_listening_is_unavailable(harness: Harness) -> None:
    client = CaClient((HOST, free_port()), [SigningCa().root_pem], lambda: "t", timeout=2)
    harness.clients.append(client)
    with pytest.raises(CaUnavailable) as caught:
        await client.create_certificate(make_csr(generate_key(), SERVER_ID), 600)
    assert isinstance(caught.value, WeftError)


# -- tests: the SDS server, spoken to as Envoy would -----------------------------------------


async def test_sds_stream_serves_named_secrets_and_pushes_rotations(
    ca_server: CaServer, harness: Harness
) -> None:
    ca = ca_server.client("ratings-token")
    harness.clients.append(ca)
    agent = await harness.agent("ratings", SERVER_ID, ca.create_certificate)
    assert stat.S_IMODE(os.stat(agent.sds.socket_path).st_mode) == 0o600

    async with grpc.aio.insecure_channel(f"unix:{agent.sds.socket_path}") as channel:
        requests: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()

        async def send() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
            while True:
                yield await requests.get()

        call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets(send())
        await requests.put(
            discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["default"])
        )
        first = await asyncio.wait_for(call.read(), 5)
        (secret,) = [_unpack(r) for r in first.resources]
        assert secret.name == WORKLOAD_SECRET
        chain = secret.tls_certificate.certificate_chain.inline_bytes.decode()
        assert chain.count("BEGIN CERTIFICATE") == 1, "the root is not in Envoy's chain"
        assert "PRIVATE KEY" in secret.tls_certificate.private_key.inline_bytes.decode()

        # A NACK is kept (with Envoy's message) and not answered.
        await requests.put(_reply(first, error="bad key"))
        await eventually(lambda: _nack(agent.sds) == "bad key", "the NACK recorded")
        await requests.put(_reply(first))  # then accepted
        await eventually(agent.sds.synced, "the ACK recorded")

        await agent.certs.renew()
        pushed = await asyncio.wait_for(call.read(), 5)
        assert pushed.version_info != first.version_info
        assert _unpack(pushed.resources[0]).tls_certificate != secret.tls_certificate
        call.cancel()


async def test_fetch_secrets_answers_root_bundle(ca_server: CaServer, harness: Harness) -> None:
    ca = ca_server.client("ratings-token")
    harness.clients.append(ca)
    agent = await harness.agent("ratings", SERVER_ID, ca.create_certificate)
    async with grpc.aio.insecure_channel(f"unix:{agent.sds.socket_path}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        response = await stub.FetchSecrets(
            discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["ROOTCA"]),
            timeout=5,
        )
    (root,) = [_unpack(r) for r in response.resources]
    assert root.name == ROOT_SECRET
    assert root.validation_context.trusted_ca.inline_bytes.decode().strip() == (
        ca_server.ca.root_pem.strip()
    )


def _unpack(resource: Any) -> secret_pb2.Secret:
    secret = secret_pb2.Secret()
    assert resource.Unpack(secret)
    return secret


def _reply(
    response: discovery_pb2.DiscoveryResponse, error: str | None = None
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=SECRET_TYPE,
        resource_names=["default"],
        version_info=response.version_info,
        response_nonce=response.nonce,
    )
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def _nack(sds: SdsServer) -> str | None:
    return next((s.nack for s in sds.streams.values() if s.nack), None)


# -- tests: real Envoys doing mTLS -----------------------------------------------------------


async def test_mtls_request_carries_the_client_identity(mesh: Mesh) -> None:
    async with aiohttp.ClientSession(trust_env=False) as session:
        status, headers = await get(session, mesh.client_port)

    assert status == 200, headers
    cert = xfcc(headers)
    assert cert["URI"] == CLIENT_ID
    assert cert["By"] == SERVER_ID
    assert cert["Hash"] == mesh.client.leaf().sha256
    assert mesh.client.sds.synced() and mesh.server.sds.synced()


@pytest.mark.parametrize("client_ttl", [6.0])
async def test_client_cert_rotates_under_load_without_a_failed_request(mesh: Mesh) -> None:
    seen: dict[str, int] = {}
    failures: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 25
    async with aiohttp.ClientSession(trust_env=False) as session:
        while mesh.client.certs.rotations < 2 or len(seen) < 3:
            assert loop.time() < deadline, f"rotations={mesh.client.certs.rotations} {seen}"
            try:
                status, headers = await get(session, mesh.client_port)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"{status}: {headers}")
                continue
            digest = xfcc(headers)["Hash"]
            seen[digest] = seen.get(digest, 0) + 1

    assert failures == []
    issued = {leaf.sha256 for leaf in mesh.client.issued}
    assert set(seen) <= issued, "the server saw only certificates the agent was issued"
    # Envoy's own view: the certificate it presents now is the agent's current one.
    serial = mesh.client.leaf().serial

    async def presents_current() -> bool:
        return serial in await mesh.client_envoy.admin_get("/certs")

    await eventually(presents_current, "Envoy presenting the current certificate")


async def test_client_with_a_cert_from_another_ca_is_refused(
    mesh: Mesh, harness: Harness, ca_server: CaServer
) -> None:
    rogue_ca = SigningCa("Rogue CA")

    async def rogue_sign(csr: str, ttl: float) -> list[str]:
        return rogue_ca.issue(csr, ttl)

    # It trusts the mesh root, so only the server's check can stop it.
    rogue = await harness.agent(
        "rogue", CLIENT_ID, rogue_sign, trust_bundle=[ca_server.ca.root_pem]
    )
    port = free_port()
    await harness.envoy(client_bootstrap(port, mesh.server_port, rogue.sds))

    async with aiohttp.ClientSession(trust_env=False) as session:
        status, body = await get(session, port)
        assert status == 503, body
        ok, _ = await get(session, mesh.client_port)
        assert ok == 200

    stats = await mesh.server_envoy.stats(r"^listener\..*ssl\.(fail_verify_error|handshake)$")
    assert sum(v for k, v in stats.items() if k.endswith("fail_verify_error")) >= 1, stats


async def test_envoy_waits_for_its_certificate_while_the_ca_is_down(
    harness: Harness, ca_server: CaServer, echo_app: int
) -> None:
    ca = ca_server.client("ratings-token")
    harness.clients.append(ca)
    ca_up = asyncio.Event()

    async def sign(csr: str, ttl: float) -> list[str]:
        if not ca_up.is_set():
            raise CaUnavailable("the CA is down")
        return await ca.create_certificate(csr, ttl)

    certs = WorkloadCertificates(SERVER_ID, sign, initial_backoff=0.05, max_backoff=0.2)
    sds = SdsServer(certs, harness.sockets / "ratings.sock")
    await sds.start()
    agent = Agent(certs, sds, asyncio.create_task(certs.run()))
    harness.agents.append(agent)
    envoy = EnvoyProcess(
        server_bootstrap(free_port(), echo_app, sds), harness.tmp_path / "envoy", 0
    )
    harness.envoys.append(envoy)
    await envoy.start(timeout=15)

    def asked_for_both() -> bool:
        names = {name for stream in sds.streams.values() for name in stream.names}
        return names == {WORKLOAD_SECRET, ROOT_SECRET}

    await eventually(asked_for_both, "Envoy asking for default and ROOTCA")
    assert await envoy.server_state() == "INITIALIZING", "the listener warms without secrets"

    ca_up.set()
    await envoy.wait_live(timeout=10)
    await eventually(sds.synced, "Envoy accepting both secrets")


class CorruptingSds(SdsServer):
    """Serves a key that does not belong to the certificate, once told to."""

    corrupt = False

    def current(self) -> dict[str, secret_pb2.Secret]:
        items = super().current()
        if self.corrupt and WORKLOAD_SECRET in items:
            items[WORKLOAD_SECRET].tls_certificate.private_key.inline_bytes = key_pem(
                generate_key()
            ).encode()
        return items


async def test_a_secret_envoy_rejects_is_logged_with_envoys_message(
    harness: Harness, ca_server: CaServer, echo_app: int, caplog: pytest.LogCaptureFixture
) -> None:
    ca = ca_server.client("ratings-token")
    harness.clients.append(ca)
    certs = WorkloadCertificates(SERVER_ID, ca.create_certificate)
    sds = CorruptingSds(certs, harness.sockets / "ratings.sock")
    await sds.start()
    harness.agents.append(Agent(certs, sds, asyncio.create_task(certs.run())))
    await asyncio.wait_for(certs.issued.wait(), 10)
    serving = parse_chain(certs.current()[1])[0].serial  # type: ignore[index]
    envoy = await harness.envoy(server_bootstrap(free_port(), echo_app, sds))

    sds.corrupt = True
    with caplog.at_level(logging.WARNING, logger="weft.agent.sds"):
        await certs.renew()
        await eventually(lambda: _nack(sds) is not None, "Envoy's NACK")

    assert "KEY_VALUES_MISMATCH" in (_nack(sds) or "")
    assert "rejected secrets default" in caplog.text and "KEY_VALUES_MISMATCH" in caplog.text
    assert not sds.synced()
    assert await envoy.server_state() == "LIVE"
    assert serving in await envoy.admin_get("/certs"), "Envoy keeps its last good certificate"
