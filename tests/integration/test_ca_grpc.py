"""The signing API over real gRPC with TLS: a workload with a token gets its own identity only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from weft.agent.ports import free_port
from weft.ca.authority import CertificateAuthority
from weft.ca.identity import SpiffeId
from weft.ca.proto import METHOD, IstioCertificateRequest, IstioCertificateResponse
from weft.ca.server import CertificateService
from weft.ca.tokens import BootstrapTokens

pytestmark = pytest.mark.integration

ISTIOD = SpiffeId("cluster.local", "istio-system", "istiod")
REVIEWS = SpiffeId("cluster.local", "default", "bookinfo-reviews")
RPC_TIMEOUT = 10.0


def csr_for(*uris: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if uris:
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris])
        builder = builder.add_extension(san, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Citadel:
    ca: CertificateAuthority
    tokens: BootstrapTokens
    service: CertificateService
    call: grpc.aio.UnaryUnaryMultiCallable
    state_dir: Path
    port: int

    async def create(
        self, csr: str, token: str | None = None, validity: int = 0
    ) -> IstioCertificateResponse:
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        request = IstioCertificateRequest(csr=csr, validity_duration=validity)
        return await self.call(request, metadata=metadata, timeout=RPC_TIMEOUT)


@pytest_asyncio.fixture
async def citadel(tmp_path: Path) -> AsyncIterator[Citadel]:
    ca = CertificateAuthority.load_or_create(tmp_path, max_ttl=48 * 3600)
    tokens = BootstrapTokens.load_or_create(tmp_path)
    service = CertificateService(ca, tokens)
    chain, key = ca.issue_serving_cert(
        ["istiod.istio-system.svc", "localhost"], ["127.0.0.1"], ISTIOD, ttl=3600
    )
    server = grpc.aio.server()
    service.add_to_server(server)
    port = free_port()
    server_creds = grpc.ssl_server_credentials([(key.encode(), "".join(chain).encode())])
    assert server.add_secure_port(f"127.0.0.1:{port}", server_creds) == port
    await server.start()
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials(root_certificates="".join(ca.trust_bundle()).encode()),
        options=[("grpc.ssl_target_name_override", "istiod.istio-system.svc")],
    )
    try:
        call = channel.unary_unary(
            METHOD,
            request_serializer=IstioCertificateRequest.SerializeToString,
            response_deserializer=IstioCertificateResponse.FromString,
        )
        yield Citadel(ca, tokens, service, call, tmp_path, port)
    finally:
        await channel.close()
        await server.stop(grace=None)


async def test_token_holder_gets_a_certificate_for_its_identity(citadel: Citadel) -> None:
    token = citadel.tokens.issue("default", "bookinfo-reviews", "reviews-v1")
    response = await citadel.create(csr_for(REVIEWS.uri), token)

    leaf, *intermediates, root = [
        x509.load_pem_x509_certificate(p.encode()) for p in response.cert_chain
    ]
    assert intermediates == []
    assert root == x509.load_pem_x509_certificate(citadel.ca.trust_bundle()[0].encode())
    verified = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .build_client_verifier()
        .verify(leaf, intermediates)
    )
    assert verified.subjects == [x509.UniformResourceIdentifier(REVIEWS.uri)]
    assert citadel.service.stats.issued == 1


async def test_identity_comes_from_the_token_when_the_csr_names_none(citadel: Citadel) -> None:
    token = citadel.tokens.issue("shop", "checkout", "checkout-1")
    response = await citadel.create(csr_for(), token, validity=3600)
    leaf = x509.load_pem_x509_certificate(response.cert_chain[0].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/checkout"
    ]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert 3600 <= lifetime.total_seconds() <= 3600 + 120  # notBefore is set back a minute


async def test_no_token_is_unauthenticated(citadel: Citadel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await citadel.create(csr_for(REVIEWS.uri))
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in (error.value.details() or "")
    assert citadel.service.stats.unauthenticated == 1


async def test_expired_token_is_unauthenticated(citadel: Citadel) -> None:
    # Same key from the state dir, but a clock an hour behind: the token expired 50 min ago.
    earlier = BootstrapTokens.load_or_create(citadel.state_dir, clock=lambda: time.time() - 3600)
    token = earlier.issue("default", "bookinfo-reviews", "reviews-v1", ttl=600)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await citadel.create(csr_for(REVIEWS.uri), token)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (error.value.details() or "")


async def test_csr_for_another_identity_is_permission_denied(citadel: Citadel) -> None:
    token = citadel.tokens.issue("default", "bookinfo-reviews", "reviews-v1")
    admin = "spiffe://cluster.local/ns/istio-system/sa/istiod"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await citadel.create(csr_for(admin), token)
    assert error.value.code() is grpc.StatusCode.PERMISSION_DENIED
    details = error.value.details() or ""
    assert admin in details
    assert REVIEWS.uri in details
    assert citadel.service.stats.permission_denied == 1
    assert citadel.service.stats.issued == 0


async def test_ttl_above_maximum_is_invalid_argument(citadel: Citadel) -> None:
    token = citadel.tokens.issue("default", "bookinfo-reviews", "reviews-v1")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await citadel.create(csr_for(REVIEWS.uri), token, validity=49 * 3600)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "maximum of 172800s" in (error.value.details() or "")


async def test_client_trusting_another_root_cannot_connect(
    citadel: Citadel, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.load_or_create(tmp_path / "elsewhere")
    port = citadel.port
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials("".join(stranger.trust_bundle()).encode()),
    )
    call = channel.unary_unary(
        METHOD,
        request_serializer=IstioCertificateRequest.SerializeToString,
        response_deserializer=IstioCertificateResponse.FromString,
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(IstioCertificateRequest(csr=csr_for()), timeout=RPC_TIMEOUT)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "CERTIFICATE_VERIFY_FAILED" in (error.value.details() or "")
    finally:
        await channel.close()
