"""SDS for the workload's own Envoy, on a Unix socket: its key and chain, and the root bundle.

Envoy asks by name, with the names Istio's agent uses: `default` (key and chain) and `ROOTCA`
(roots). State of the world; every change of certificate or bundle is pushed to every stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from weft.agent.certs import WorkloadCertificates
from weft.errors import ProxyError
from weft.xds.stream import pump_requests
from weft.xds.subscription import Received, Subscription, receive, response

log = logging.getLogger("weft.agent.sds")

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SDS_CLUSTER = "sds-grpc"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
KNOWN_SECRETS = (WORKLOAD_SECRET, ROOT_SECRET)

_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_STOP_GRACE_S = 0.5
_WAKE = object()


def secret_resources(
    key_pem: str | None, chain: list[str], bundle: list[str]
) -> dict[str, secret_pb2.Secret]:
    """The secrets there is content for now, by name."""
    out: dict[str, secret_pb2.Secret] = {}
    if key_pem is not None and chain:
        out[WORKLOAD_SECRET] = secret_pb2.Secret(
            name=WORKLOAD_SECRET,
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes="".join(chain).encode()),
                private_key=base_pb2.DataSource(inline_bytes=key_pem.encode()),
            ),
        )
    if bundle:
        out[ROOT_SECRET] = secret_pb2.Secret(
            name=ROOT_SECRET,
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=base_pb2.DataSource(inline_bytes="".join(bundle).encode())
            ),
        )
    return out


def version_of(items: Mapping[str, secret_pb2.Secret]) -> str:
    """A content hash: the same secrets get the same version, across agent restarts too."""
    digest = hashlib.sha256()
    for name in sorted(items):
        digest.update(name.encode() + b"\0")
        digest.update(items[name].SerializeToString(deterministic=True))
    return digest.hexdigest()[:16]


@dataclass
class SdsStream(Subscription):
    """One Envoy stream: what it asked for, and what it last got, accepted or rejected."""

    id: int = 0
    node: str = ""
    warned: set[str] = field(default_factory=set)


class SdsServer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    """Serves one workload's secrets to its Envoy over a Unix socket only it can open."""

    def __init__(self, certs: WorkloadCertificates, socket_path: str | Path) -> None:
        self._certs = certs
        self._socket_path = Path(socket_path)
        self._server: Any = None
        self._unsubscribe: Any = None
        self._queues: dict[int, asyncio.Queue[object]] = {}
        self.streams: dict[int, SdsStream] = {}
        self._nonce_prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)

    @property
    def socket_path(self) -> Path:
        return self._socket_path

    def current(self) -> dict[str, secret_pb2.Secret]:
        issued = self._certs.current()
        key, chain = issued if issued is not None else (None, [])
        return secret_resources(key, chain, self._certs.trust_bundle())

    def synced(self) -> bool:
        """Whether every stream has accepted exactly what it would be sent now (a stream still
        waiting for a certificate to be sent is not)."""
        return all(
            s.requested and s.acked_version == self._response_version(s)
            for s in self.streams.values()
        )

    async def start(self) -> None:
        path = str(self._socket_path)
        if len(path.encode()) > _MAX_UNIX_PATH:
            raise ProxyError(
                f"SDS socket path {path} is longer than {_MAX_UNIX_PATH} bytes, "
                f"which Unix sockets do not allow: use a shorter directory"
            )
        self._socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._socket_path.unlink(missing_ok=True)  # left by an agent that was killed
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(self, server)
        try:
            server.add_insecure_port(f"unix:{path}")
        except RuntimeError as exc:
            raise ProxyError(f"cannot listen for SDS on unix:{path}: {exc}") from exc
        await server.start()
        # The key is served in the clear to whoever can connect: only our own user may.
        os.chmod(path, 0o600)
        self._server = server
        self._unsubscribe = self._certs.subscribe(self._wake_all)
        log.info("SDS serving on unix:%s", path)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            await self._server.stop(_STOP_GRACE_S)
            self._server = None
        self._socket_path.unlink(missing_ok=True)

    # -- SDS ---------------------------------------------------------------------------------

    async def StreamSecrets(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = SdsStream(id=next(self._ids))
        queue: asyncio.Queue[object] = asyncio.Queue()
        self.streams[stream.id] = stream
        self._queues[stream.id] = queue
        reader = asyncio.create_task(pump_requests(request_iterator, queue))
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    break
                if event is _WAKE:
                    response = self._respond(stream, force=False)
                else:
                    assert isinstance(event, discovery_pb2.DiscoveryRequest)
                    if event.type_url and event.type_url != SECRET_TYPE:
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"this SDS server serves {SECRET_TYPE} only, not {event.type_url}",
                        )
                        return
                    response = self._on_request(stream, event)
                if response is not None:
                    yield response
        finally:
            reader.cancel()
            self.streams.pop(stream.id, None)
            self._queues.pop(stream.id, None)

    async def FetchSecrets(
        self,
        request: discovery_pb2.DiscoveryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> discovery_pb2.DiscoveryResponse:
        items = self._select(frozenset(request.resource_names))
        if items is None:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "the workload certificate or trust bundle has not arrived yet: retry",
            )
        assert items is not None
        return discovery_pb2.DiscoveryResponse(
            version_info=version_of(items),
            type_url=SECRET_TYPE,
            nonce=self._nonce(),
            resources=_packed(items),
        )

    async def DeltaSecrets(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "delta SDS is not served: use state of the world"
        )
        yield discovery_pb2.DeltaDiscoveryResponse()  # pragma: no cover - makes a generator

    # -- state of one stream -----------------------------------------------------------------

    def _on_request(
        self, stream: SdsStream, request: discovery_pb2.DiscoveryRequest
    ) -> discovery_pb2.DiscoveryResponse | None:
        if request.node.id:
            stream.node = request.node.id
        received = receive(stream, request)
        if received is Received.NACK:
            log.warning(
                "Envoy %s rejected secrets %s version %s: %s",
                stream.node or "(unknown node)",
                ", ".join(sorted(stream.names)) or "(all)",
                stream.sent_version,
                stream.nack,
            )
        if received is not Received.ASK:
            return None
        return self._respond(stream, force=True)

    def _respond(self, stream: SdsStream, force: bool) -> discovery_pb2.DiscoveryResponse | None:
        if not stream.requested:
            return None
        for name in stream.names - set(KNOWN_SECRETS) - stream.warned:
            stream.warned.add(name)
            log.warning(
                "Envoy %s asked for secret %r; this agent serves only %s",
                stream.node or "(unknown node)",
                name,
                " and ".join(KNOWN_SECRETS),
            )
        items = self._select(stream.names)
        if items is None:
            return None  # Envoy keeps warming until the certificate arrives
        version = version_of(items)
        if not force and version == stream.sent_version:
            return None
        return response(stream, SECRET_TYPE, version, _packed(items), self._nonce())

    def _select(self, names: frozenset[str]) -> dict[str, secret_pb2.Secret] | None:
        """The secrets named (all for no names), or None while a known one is missing."""
        available = self.current()
        wanted = names & set(KNOWN_SECRETS) if names else set(KNOWN_SECRETS)
        if not wanted or not wanted <= available.keys():
            return None
        return {name: available[name] for name in sorted(wanted)}

    def _response_version(self, stream: SdsStream) -> str | None:
        items = self._select(stream.names)
        return None if items is None else version_of(items)

    def _nonce(self) -> str:
        return f"{self._nonce_prefix}-{next(self._ids)}"

    def _wake_all(self) -> None:
        for queue in self._queues.values():
            queue.put_nowait(_WAKE)


def _packed(items: Mapping[str, secret_pb2.Secret]) -> list[any_pb2.Any]:
    packed = []
    for secret in items.values():
        packed.append(any_pb2.Any())
        packed[-1].Pack(secret)
    return packed


# -- what Envoy's bootstrap and TLS contexts need to reach this server -----------------------


def sds_cluster(socket_path: str | Path) -> dict[str, Any]:
    """The bootstrap's static cluster for this server (gRPC, so HTTP/2)."""
    options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    return {
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": str(socket_path)}}}}]}
            ],
        },
        "typed_extension_protocol_options": {
            options: {
                "@type": f"type.googleapis.com/{options}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }


def sds_config() -> dict[str, Any]:
    """The `sds_config` with which a TLS context fetches a secret from `sds-grpc`."""
    return {
        "api_config_source": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}],
        },
        "resource_api_version": "V3",
    }


def sds_secret_config(name: str) -> dict[str, Any]:
    """An `SdsSecretConfig` naming one of this server's secrets."""
    return {"name": name, "sds_config": sds_config()}
