from __future__ import annotations

import datetime
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from weft.agent.identity import (
    CertificateError,
    PrivateKey,
    generate_key,
    key_pem,
    load_cert,
    make_csr,
    parse_chain,
    same_public_key,
    split_pem,
)

SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class SigningCa:
    """A CA for tests: a self-signed EC root that signs workload CSRs as Istio's CA does."""

    def __init__(self, name: str = "Weft Test Root CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def root_pem(self) -> str:
        return _pem(self.cert)

    def issue(
        self,
        csr_pem: str,
        ttl: float,
        *,
        now: float | None = None,
        uri: str | None = None,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None = None,
    ) -> list[str]:
        """[leaf, root]: the leaf has an empty subject and one critical URI SAN."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        if uri is None:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uri = san.get_values_for_type(x509.UniformResourceIdentifier)[0]
        start = datetime.datetime.fromtimestamp(
            now if now is not None else datetime.datetime.now(datetime.UTC).timestamp(),
            datetime.UTC,
        )
        key = public_key or csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        leaf = self._leaf(key, x509.Name([]), start, ttl).add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
        )
        return [_pem(leaf.sign(self.key, hashes.SHA256())), self.root_pem]

    def serving_cert(self, dns_name: str) -> tuple[str, str]:
        """(key PEM, cert PEM) for a TLS server known as `dns_name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
        cert = (
            self._leaf(key.public_key(), name, start, 3600)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return key_pem(key), _pem(cert)

    def _leaf(
        self,
        key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        subject: x509.Name,
        start: datetime.datetime,
        ttl: float,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key)
            .serial_number(int.from_bytes(secrets.token_bytes(16)) >> 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(seconds=ttl))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )


def test_default_key_is_ec_p256() -> None:
    key = generate_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_rsa_key_is_2048_bits() -> None:
    key = generate_key("RSA")
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_unknown_key_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'DSA'"):
        generate_key("DSA")  # type: ignore[arg-type]


def test_every_key_is_new() -> None:
    assert key_pem(generate_key()) != key_pem(generate_key())


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_key_pem_is_unencrypted_pkcs8(kind: str) -> None:
    key: PrivateKey = generate_key(kind)  # type: ignore[arg-type]
    text = key_pem(key)
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "EC PRIVATE KEY"
    loaded = serialization.load_pem_private_key(text.encode(), password=None)
    assert spki(loaded.public_key()) == spki(key.public_key())


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_csr_carries_the_uri_san_critical_and_an_empty_subject(kind: str) -> None:
    key = generate_key(kind)  # type: ignore[arg-type]
    csr = x509.load_pem_x509_csr(make_csr(key, SPIFFE).encode())

    assert csr.is_signature_valid
    assert len(csr.subject) == 0
    extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert extension.critical
    assert extension.value.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE]
    assert extension.value.get_values_for_type(x509.DNSName) == []
    assert spki(csr.public_key()) == spki(key.public_key())


def test_csr_needs_a_spiffe_id() -> None:
    with pytest.raises(ValueError, match="not a SPIFFE id"):
        make_csr(generate_key(), "https://reviews.default.svc")


def test_parse_chain_describes_leaf_and_root() -> None:
    ca = SigningCa()
    key = generate_key()
    chain = ca.issue(make_csr(key, SPIFFE), 3600, now=1_900_000_000)

    leaf, root = parse_chain(chain)

    assert leaf.subject == ""
    assert leaf.uri_sans == (SPIFFE,)
    assert leaf.issuer == root.subject == "O=Weft Test Root CA"
    assert leaf.not_before == datetime.datetime.fromtimestamp(1_900_000_000, datetime.UTC)
    assert leaf.lifetime() == 3600
    assert int(leaf.serial, 16) == load_cert(chain[0]).serial_number
    assert len(leaf.serial) % 2 == 0, "whole bytes, as Envoy's /certs shows serials"
    assert not leaf.is_ca and not leaf.self_signed
    assert root.is_ca and root.self_signed and root.uri_sans == ()
    assert leaf.as_dict()["not_after"] == "2030-03-17T18:46:40+00:00"
    assert len(leaf.sha256) == 64


def test_split_pem_returns_each_certificate() -> None:
    ca = SigningCa()
    chain = ca.issue(make_csr(generate_key(), SPIFFE), 60)
    bundle = "garbage before\n" + "".join(chain) + "\ntrailing"
    assert [load_cert(pem) for pem in split_pem(bundle)] == [load_cert(pem) for pem in chain]


def test_parse_chain_says_what_is_not_a_certificate() -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        parse_chain(["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])


def test_same_public_key_tells_keys_apart() -> None:
    ca = SigningCa()
    key = generate_key()
    leaf = load_cert(ca.issue(make_csr(key, SPIFFE), 60)[0])
    assert same_public_key(key, leaf)
    assert not same_public_key(generate_key(), leaf)
