"""The workload's own key and CSR, and readable facts about the certificates it is given.

The private key is made here and never leaves the workload: the CA only ever sees a CSR.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from weft.errors import WeftError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyKind = Literal["EC", "RSA"]

_PEM_END = "-----END CERTIFICATE-----"


class CertificateError(WeftError):
    """A certificate or chain could not be read, or does not fit the workload's key."""


def generate_key(kind: KeyKind = "EC") -> PrivateKey:
    """A new private key: EC P-256 (Istio's default for workloads), or RSA 2048."""
    if kind == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key kind {kind!r} (use 'EC' or 'RSA')")


def key_pem(key: PrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, the form Envoy reads; only ever handed to Envoy."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_csr(key: PrivateKey, spiffe_uri: str) -> str:
    """A PEM CSR with an empty subject and `spiffe_uri` as its only, critical, URI SAN.

    The CA decides the identity from how the caller authenticated; the SAN says what the
    workload expects, so a mismatch can be refused instead of silently rewritten.
    """
    if not spiffe_uri.startswith("spiffe://"):
        raise ValueError(f"{spiffe_uri!r} is not a SPIFFE id (spiffe://<trust-domain>/...)")
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        # An empty subject makes the SAN the identity, so RFC 5280 wants it critical.
        .add_extension(san, critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def split_pem(text: str) -> list[str]:
    """The certificates of a PEM bundle, one PEM string each, in order."""
    certs: list[str] = []
    for block in text.split(_PEM_END):
        start = block.find("-----BEGIN CERTIFICATE-----")
        if start != -1:
            certs.append(block[start:] + _PEM_END + "\n")
    return certs


@dataclass(frozen=True)
class CertInfo:
    """What `weft proxy-config secret` shows about one certificate."""

    subject: str
    issuer: str
    uri_sans: tuple[str, ...]
    dns_sans: tuple[str, ...]
    serial: str  # lower-case hex, as Envoy's /certs shows it
    not_before: datetime.datetime
    not_after: datetime.datetime
    is_ca: bool
    sha256: str  # of the DER, as in x-forwarded-client-cert's Hash

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def lifetime(self) -> float:
        return (self.not_after - self.not_before).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "uri_sans": list(self.uri_sans),
            "dns_sans": list(self.dns_sans),
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "is_ca": self.is_ca,
            "sha256": self.sha256,
        }


def load_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from exc


def cert_info(cert: x509.Certificate) -> CertInfo:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(sans.get_values_for_type(x509.UniformResourceIdentifier))
        dns = tuple(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        uris, dns = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        uri_sans=uris,
        dns_sans=dns,
        serial=_hex_bytes(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def _hex_bytes(number: int) -> str:
    """Two hex digits per byte, as Envoy's /certs and OpenSSL print serials."""
    text = format(number, "x")
    return text.zfill(len(text) + len(text) % 2)


def parse_chain(pem_list: list[str]) -> list[CertInfo]:
    """Facts about each certificate of a chain or bundle, in the order given."""
    return [cert_info(load_cert(pem)) for pem in pem_list]


def same_public_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether `cert` certifies `key`: a CA answer for someone else's CSR must not be used."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    theirs = cert.public_key().public_bytes(serialization.Encoding.DER, spki)
    return ours == theirs
