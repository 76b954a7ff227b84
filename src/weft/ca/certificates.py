"""Building X.509 certificates: self-signed roots and SPIFFE workload leaves. Pure functions."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Keys a CA can sign with, and keys a certificate can be issued for.
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SubjectKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

CLOCK_SKEW = timedelta(minutes=1)
ROOT_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True)
class SigningMaterial:
    """What a CA signs with: its certificate and key, the chain up to a root, and the bundle.

    `intermediates` runs from `cert` up to, not including, `root`; it is empty when `cert` is
    the root. `bundle` is every trusted root, the one `cert` leads to first.
    """

    cert: x509.Certificate
    key: SigningKey
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate
    bundle: tuple[x509.Certificate, ...]

    def chain_to_root(self) -> list[x509.Certificate]:
        """The certificates above a leaf this CA signs: intermediates then the root."""
        return [*self.intermediates, self.root]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def random_serial() -> int:
    """A random positive 128-bit serial number."""
    return secrets.randbits(128) or 1


def _hash_for(key: SigningKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size <= 384 else hashes.SHA512()
    return hashes.SHA256()


def _key_id(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def build_root(
    trust_domain: str, now: datetime, lifetime: timedelta = ROOT_LIFETIME
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed root CA for `trust_domain`, with its key."""
    key = new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    # A distinct name per root lets verifiers tell the old and new root apart mid-rotation.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Weft root CA {ski.digest.hex()[:8]}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, _hash_for(key))
    )
    return cert, key


def build_leaf(
    public_key: SubjectKey,
    uris: Sequence[str],
    signer: SigningMaterial,
    not_before: datetime,
    not_after: datetime,
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> x509.Certificate:
    """A leaf with an empty subject: its names are only in the (then critical) SAN."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(signer.cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_key_id(signer.cert), critical=False)
        .sign(signer.key, _hash_for(signer.key))
    )


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: SigningKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def utcnow() -> datetime:
    return datetime.now(UTC)
