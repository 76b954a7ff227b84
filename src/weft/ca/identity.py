"""SPIFFE identities of workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SCHEME = "spiffe://"
DEFAULT_TRUST_DOMAIN = "cluster.local"

# SPIFFE: a trust domain is lowercase letters, digits, '.', '-' and '_'; path segments may also
# hold uppercase letters. Kubernetes names are narrower still, so these never refuse a real one.
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def check_trust_domain(value: str) -> None:
    """ValueError unless `value` can be a SPIFFE trust domain."""
    if not _TRUST_DOMAIN.fullmatch(value):
        raise ValueError(
            f"invalid trust domain {value!r}: use lowercase letters, digits, '.', '-' or '_'"
        )


def check_name(what: str, value: str) -> None:
    """ValueError unless `value` can be a namespace or service account in a SPIFFE ID."""
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '-' or '_'")


@dataclass(frozen=True)
class SpiffeId:
    """The identity a workload certificate proves: its trust domain, namespace, service account."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        check_name("namespace", self.namespace)
        check_name("service account", self.service_account)

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`; ValueError saying what is wrong."""
        expected = f"expected {SCHEME}<trust-domain>/ns/<namespace>/sa/<service-account>"
        if not uri.startswith(SCHEME):
            raise ValueError(f"not a SPIFFE ID: {uri!r}; {expected}")
        trust_domain, _, path = uri[len(SCHEME) :].partition("/")
        parts = path.split("/")
        if not trust_domain or len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise ValueError(f"not a workload SPIFFE ID: {uri!r}; {expected}")
        try:
            return cls(trust_domain, parts[1], parts[3])
        except ValueError as e:
            raise ValueError(f"not a workload SPIFFE ID: {uri!r}: {e}") from None


def fingerprint(pem: str) -> str:
    """A short, stable name for a certificate: the start of the SHA-256 of its DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem.encode())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()[:16]
