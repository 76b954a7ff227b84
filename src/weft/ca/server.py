"""Istio's certificate signing API over gRPC: `istio.v1.auth.IstioCertificateService`.

A caller proves who it is with a bootstrap token in the `authorization: Bearer <token>`
metadata; it gets a certificate for that identity only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509

from weft.ca.authority import CertificateAuthority
from weft.ca.errors import AuthenticationFailed, CsrRefused, IdentityMismatch, TtlRefused
from weft.ca.identity import SpiffeId
from weft.ca.proto import SERVICE, IstioCertificateRequest, IstioCertificateResponse
from weft.ca.tokens import BootstrapTokens

log = logging.getLogger("weft.ca")


@dataclass
class SigningStats:
    """Counts of CreateCertificate outcomes since start."""

    issued: int = 0
    unauthenticated: int = 0
    permission_denied: int = 0
    invalid_argument: int = 0

    @property
    def refused(self) -> int:
        return self.unauthenticated + self.permission_denied + self.invalid_argument


class _Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bearer_token(metadata: Any) -> str:
    """The token in `authorization: Bearer <token>`; AuthenticationFailed when there is none."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise AuthenticationFailed("the authorization metadata is not 'Bearer <token>'")
    raise AuthenticationFailed("no bootstrap token: send metadata 'authorization: Bearer <token>'")


class CertificateService:
    """Signs workload CSRs for authenticated callers; register with `add_to_server`."""

    def __init__(self, ca: CertificateAuthority, tokens: BootstrapTokens) -> None:
        self.ca = ca
        self.tokens = tokens
        self.stats = SigningStats()

    def add_to_server(self, server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "CreateCertificate": grpc.unary_unary_rpc_method_handler(
                    self.create_certificate,
                    request_deserializer=IstioCertificateRequest.FromString,
                    response_serializer=IstioCertificateResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))

    async def create_certificate(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return IstioCertificateResponse(
                cert_chain=self._sign(request, context.invocation_metadata())
            )
        except _Refusal as refusal:
            log.warning(
                "refused a certificate to %s: %s: %s",
                context.peer(),
                refusal.code.name,
                refusal.message,
            )
            await context.abort(refusal.code, refusal.message)
            raise  # abort() raises; this only makes that plain

    def _sign(self, request: Any, metadata: Any) -> list[str]:
        try:
            claims = self.tokens.verify(bearer_token(metadata))
        except AuthenticationFailed as e:
            self.stats.unauthenticated += 1
            raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, str(e)) from None
        identity = SpiffeId(self.ca.trust_domain, claims.namespace, claims.service_account)
        # Istio's convention: a validity of 0 asks for the CA's default.
        ttl = float(request.validity_duration) if request.validity_duration else None
        try:
            chain = self.ca.sign_csr(request.csr, identity, ttl)
        except IdentityMismatch as e:
            self.stats.permission_denied += 1
            raise _Refusal(grpc.StatusCode.PERMISSION_DENIED, str(e)) from None
        except (CsrRefused, TtlRefused) as e:
            self.stats.invalid_argument += 1
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        self.stats.issued += 1
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        log.info(
            "issued a certificate to %s (workload %s): serial %x, valid until %s",
            identity,
            claims.workload,
            leaf.serial_number,
            leaf.not_valid_after_utc.isoformat(),
        )
        return chain
