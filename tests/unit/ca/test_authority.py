from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.unit.ca.conftest import REVIEWS
from tests.unit.ca.pki import load, make_csr
from weft.ca.authority import CertificateAuthority
from weft.ca.errors import CaConfigError, CsrRefused, IdentityMismatch, TtlRefused
from weft.ca.identity import SpiffeId


def _close(actual: datetime, expected: datetime, slack: float = 10) -> bool:
    return abs((actual - expected).total_seconds()) <= slack


def test_root_is_created_once_in_istio_layout_and_reused(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    ca_dir = tmp_path / "ca"
    for name in ("root-cert.pem", "ca-cert.pem", "ca-key.pem", "cert-chain.pem"):
        assert (ca_dir / name).is_file(), name
    assert stat.S_IMODE((ca_dir / "ca-key.pem").stat().st_mode) == 0o600

    again = CertificateAuthority.load_or_create(tmp_path)
    assert again.trust_bundle() == first.trust_bundle()
    # A certificate from the reloaded CA verifies against the root handed out before.
    chain = load(again.sign_csr(make_csr([REVIEWS.uri]), REVIEWS))
    chain[0].verify_directly_issued_by(load(first.trust_bundle())[0])


def test_self_signed_root_is_a_ten_year_ca(ca: CertificateAuthority) -> None:
    (root,) = load(ca.trust_bundle())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    root.verify_directly_issued_by(root)
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "cluster.local"
    )
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=3649) < lifetime < timedelta(days=3652)


def test_workload_leaf_is_a_spiffe_svid(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    chain = load(ca.sign_csr(make_csr([REVIEWS.uri], key=key), REVIEWS))
    leaf, root = chain
    assert root == load(ca.trust_bundle())[0]

    assert list(leaf.subject) == []
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert list(san.value) == [x509.UniformResourceIdentifier(REVIEWS.uri)]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert 0 < leaf.serial_number < 2**128
    now = datetime.now(UTC)
    assert _close(leaf.not_valid_before_utc, now - timedelta(minutes=1))

    leaf.verify_directly_issued_by(root)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .time(now)
        .build_client_verifier()
    )
    verified = verifier.verify(leaf, [])
    assert verified.subjects == [x509.UniformResourceIdentifier(REVIEWS.uri)]


def test_serials_differ(ca: CertificateAuthority) -> None:
    serials = {load(ca.sign_csr(make_csr(), REVIEWS))[0].serial_number for _ in range(20)}
    assert len(serials) == 20


def test_san_comes_from_the_identity_not_the_csr(ca: CertificateAuthority) -> None:
    leaf = load(ca.sign_csr(make_csr(), REVIEWS))[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [REVIEWS.uri]


def test_subject_naming_the_identity_is_accepted(ca: CertificateAuthority) -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, REVIEWS.uri)])
    leaf = load(ca.sign_csr(make_csr([REVIEWS.uri], subject=subject), REVIEWS))[0]
    assert list(leaf.subject) == []


@pytest.mark.parametrize(
    ("csr_args", "asked"),
    [
        ({"uris": ["spiffe://cluster.local/ns/kube-system/sa/admin"]}, "ns/kube-system/sa/admin"),
        ({"uris": [REVIEWS.uri, "spiffe://cluster.local/ns/x/sa/y"]}, "ns/x/sa/y"),
        ({"dns": ["ratings.default.svc"]}, "DNS:ratings.default.svc"),
        (
            {"subject": x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])},
            "CN=admin",
        ),
    ],
)
def test_csr_for_another_name_is_refused_naming_both(
    ca: CertificateAuthority, csr_args: dict[str, object], asked: str
) -> None:
    with pytest.raises(IdentityMismatch) as refused:
        ca.sign_csr(make_csr(**csr_args), REVIEWS)  # type: ignore[arg-type]
    assert asked in str(refused.value)
    assert REVIEWS.uri in str(refused.value)
    assert isinstance(refused.value, CsrRefused)


def test_identity_in_another_trust_domain_is_refused(ca: CertificateAuthority) -> None:
    other = SpiffeId("example.org", REVIEWS.namespace, REVIEWS.service_account)
    with pytest.raises(IdentityMismatch):
        ca.sign_csr(make_csr([other.uri]), REVIEWS)


def test_weak_rsa_key_is_refused(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CsrRefused, match="1024 bits is too weak"):
        ca.sign_csr(make_csr([REVIEWS.uri], key=key), REVIEWS)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa-2048"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p-384"),
    ],
)
def test_accepted_key_types(ca: CertificateAuthority, key: object) -> None:
    chain = ca.sign_csr(make_csr([REVIEWS.uri], key=key()), REVIEWS)  # type: ignore[operator]
    assert len(chain) == 2


@pytest.mark.parametrize(
    ("key", "named"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP521R1()), "secp521r1", id="p-521"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, "Ed25519", id="ed25519"),
    ],
)
def test_other_key_types_are_refused(ca: CertificateAuthority, key: object, named: str) -> None:
    with pytest.raises(CsrRefused, match=f"unsupported key .*{named}"):
        ca.sign_csr(make_csr([REVIEWS.uri], key=key()), REVIEWS)  # type: ignore[operator]


def test_csr_with_a_bad_signature_is_refused(ca: CertificateAuthority) -> None:
    csr = x509.load_pem_x509_csr(make_csr([REVIEWS.uri]).encode())
    der = csr.public_bytes(serialization.Encoding.DER)
    # Swap the requested identity after signing: same length, so the CSR still parses.
    forged = der.replace(b"bookinfo-reviews", b"bookinfo-ratings")
    assert forged != der
    other = SpiffeId("cluster.local", "default", "bookinfo-ratings")
    forged_pem = x509.load_der_x509_csr(forged).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRefused, match="signature does not match"):
        ca.sign_csr(forged_pem, other)


def test_garbage_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CsrRefused, match="not a PEM certificate signing request"):
        ca.sign_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", REVIEWS)


def test_default_ttl_is_24h(ca: CertificateAuthority) -> None:
    leaf = load(ca.sign_csr(make_csr(), REVIEWS))[0]
    assert _close(leaf.not_valid_after_utc, datetime.now(UTC) + timedelta(hours=24))


def test_explicit_ttl(ca: CertificateAuthority) -> None:
    leaf = load(ca.sign_csr(make_csr(), REVIEWS, ttl=3600))[0]
    assert _close(leaf.not_valid_after_utc, datetime.now(UTC) + timedelta(hours=1))


def test_ttl_above_maximum_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path, default_ttl=600, max_ttl=7200)
    assert len(ca.sign_csr(make_csr(), REVIEWS, ttl=7200)) == 2
    with pytest.raises(TtlRefused, match=r"7201s is above this CA's maximum of 7200s"):
        ca.sign_csr(make_csr(), REVIEWS, ttl=7201)
    with pytest.raises(TtlRefused, match="positive"):
        ca.sign_csr(make_csr(), REVIEWS, ttl=-5)


def test_default_above_maximum_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(CaConfigError, match="at most the maximum"):
        CertificateAuthority.load_or_create(tmp_path, default_ttl=7200, max_ttl=3600)


def test_serving_cert_for_the_control_plane(ca: CertificateAuthority) -> None:
    istiod = SpiffeId("cluster.local", "istio-system", "istiod")
    pems, key = ca.issue_serving_cert(
        ["istiod.istio-system.svc", "localhost"], ["127.0.0.1"], istiod, ttl=3600
    )
    leaf, root = load(pems)
    private = serialization.load_pem_private_key(key.encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    builder = verification.PolicyBuilder().store(verification.Store([root]))
    verified = builder.build_server_verifier(x509.DNSName("istiod.istio-system.svc")).verify(
        leaf, []
    )
    assert verified[-1] == root
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [istiod.uri]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_describe(ca: CertificateAuthority) -> None:
    status = ca.describe()
    assert status["mode"] == "self-signed"
    assert status["trust_domain"] == "cluster.local"
    assert status["default_ttl_seconds"] == 86400
    assert status["rotation_phase"] == "stable"
    (root,) = status["roots"]
    assert root["signing"] is True
    assert root["subject"].startswith("CN=Weft root CA")
    assert root["serial"] == f"{load(ca.trust_bundle())[0].serial_number:x}"


def test_state_dir_with_foreign_ca_files_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca-cert.pem").write_text("mine")
    with pytest.raises(CaConfigError, match="plugged-in CA"):
        CertificateAuthority.load_or_create(tmp_path)
    assert (tmp_path / "ca" / "ca-cert.pem").read_text() == "mine"
