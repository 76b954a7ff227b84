"""The agent's side of Istio's signing API: send a CSR over TLS, get a certificate chain back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import struct_pb2

from weft.ca import proto
from weft.errors import WeftError

DEFAULT_SERVER_NAME = "istiod.istio-system.svc"
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_REFUSED = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
_CLOSE_GRACE_S = 5.0


class CaError(WeftError):
    """The CA did not sign the workload's CSR."""


class CaUnavailable(CaError):
    """The CA could not be reached or did not answer in time; worth retrying."""


class CaRefused(CaError):
    """The CA answered and refused the request; `message` is what it said."""

    def __init__(self, text: str, code: str, message: str) -> None:
        super().__init__(text)
        self.code = code
        self.message = message


class CaClient:
    """Calls `IstioCertificateService/CreateCertificate` on the control plane's CA."""

    def __init__(
        self,
        address: tuple[str, int],
        root_pems: list[str],
        token: Callable[[], str],
        server_name: str = DEFAULT_SERVER_NAME,
        *,
        timeout: float = 10.0,
        request_metadata: Mapping[str, str] | None = None,
    ) -> None:
        if not root_pems:
            raise ValueError("CaClient needs the root certificates that sign the CA's TLS cert")
        self._address = address
        self._roots = list(root_pems)
        self._token = token
        self._server_name = server_name
        self._timeout = timeout
        self._request_metadata = dict(request_metadata or {})
        self._channel: Any = None
        # Channels replaced by `update_roots`, closed on the next call (which is async).
        self._retired: list[Any] = []

    @property
    def target(self) -> str:
        host, port = self._address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def update_roots(self, root_pems: list[str]) -> None:
        """Trust these roots for the CA's TLS certificate from the next call on."""
        if not root_pems:
            raise ValueError("refusing an empty trust bundle for the CA connection")
        if list(root_pems) == self._roots:
            return
        self._roots = list(root_pems)
        if self._channel is not None:
            self._retired.append(self._channel)
            self._channel = None

    async def create_certificate(self, csr_pem: str, ttl: float) -> list[str]:
        """Have `csr_pem` signed for `ttl` seconds; the chain is leaf first, root last."""
        await self._close_retired()
        request = proto.IstioCertificateRequest(csr=csr_pem, validity_duration=int(ttl))
        if self._request_metadata:
            metadata = struct_pb2.Struct()
            metadata.update(self._request_metadata)
            request.metadata.CopyFrom(metadata)
        call = self._channel_now().unary_unary(
            proto.METHOD,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=proto.IstioCertificateResponse.FromString,
        )
        try:
            response = await call(
                request,
                timeout=self._timeout,
                metadata=(("authorization", f"Bearer {self._token()}"),),
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        chain = [str(pem) for pem in response.cert_chain]
        if not chain:
            raise CaRefused(
                f"the CA at {self.target} answered with an empty certificate chain",
                "OK",
                "empty cert_chain",
            )
        return chain

    async def close(self) -> None:
        if self._channel is not None:
            self._retired.append(self._channel)
            self._channel = None
        await self._close_retired()

    def _channel_now(self) -> Any:
        if self._channel is None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates="".join(self._roots).encode()
            )
            self._channel = grpc.aio.secure_channel(
                self.target,
                credentials,
                options=(("grpc.ssl_target_name_override", self._server_name),),
            )
        return self._channel

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for channel in retired:
            # The grace lets a call still on the old channel finish.
            await channel.close(grace=_CLOSE_GRACE_S)

    def _error(self, exc: grpc.aio.AioRpcError) -> CaError:
        code = exc.code()
        details = exc.details() or ""
        where = f"the CA at {self.target} (TLS name {self._server_name})"
        if code in _REFUSED:
            return CaRefused(
                f"{where} refused the certificate request: {code.name}: {details} "
                f"(check the workload's token and that its identity may be signed)",
                code.name,
                details,
            )
        if code in _RETRYABLE:
            return CaUnavailable(f"{where} is unavailable: {code.name}: {details}")
        # Anything else (INTERNAL, RESOURCE_EXHAUSTED, ...) is the CA's trouble, not ours.
        return CaUnavailable(f"{where} failed: {code.name}: {details}")
