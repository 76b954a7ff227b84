"""A plugged-in CA: signing cert and key from a directory in Istio's plugged-CA layout.

ca-cert.pem     the certificate Weft signs with (a root, or an intermediate under one)
ca-key.pem      its private key, unencrypted
cert-chain.pem  ca-cert.pem first, then each issuer up to the root (the root may be left out)
root-cert.pem   the root(s) workloads trust; the chain must lead to one of them
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from weft.ca.certificates import SigningMaterial
from weft.ca.errors import CaConfigError
from weft.ca.pemfiles import (
    CA_CERT,
    CA_KEY,
    CERT_CHAIN,
    ROOT_CERT,
    check_key_matches,
    check_signing_ca,
    read_certs,
    read_key,
)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_plugged(directory: Path, now: datetime) -> SigningMaterial:
    """Load and cross-check the four files; CaConfigError names the file and the fix."""
    if not directory.is_dir():
        raise CaConfigError(
            f"{directory}: plugged-in CA directory not found; it must hold "
            f"{CA_CERT}, {CA_KEY}, {CERT_CHAIN} and {ROOT_CERT}"
        )
    paths = {name: directory / name for name in (CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT)}
    hints = {
        CA_CERT: "put the PEM certificate Weft should sign with here",
        CA_KEY: f"put the unencrypted PEM private key of {CA_CERT} here",
        CERT_CHAIN: f"put {CA_CERT} then each issuing CA up to the root here, PEM",
        ROOT_CERT: "put the PEM root certificate(s) of your PKI here",
    }
    for name, path in paths.items():
        if not path.is_file():
            raise CaConfigError(f"{path}: missing; {hints[name]}")

    signing = read_certs(paths[CA_CERT], hints[CA_CERT])
    if len(signing) != 1:
        raise CaConfigError(f"{paths[CA_CERT]}: holds {len(signing)} certificates, not one")
    cert = signing[0]
    check_signing_ca(cert, paths[CA_CERT], now, hints[CA_CERT])
    key = read_key(paths[CA_KEY], hints[CA_KEY])
    check_key_matches(cert, key, paths[CA_CERT], paths[CA_KEY])
    roots = read_certs(paths[ROOT_CERT], hints[ROOT_CERT])

    chain = read_certs(paths[CERT_CHAIN], hints[CERT_CHAIN])
    if chain[0] != cert:
        raise CaConfigError(
            f"{paths[CERT_CHAIN]}: its first certificate is not the one in {CA_CERT}; "
            f"{hints[CERT_CHAIN]}"
        )
    # Walk up the chain until a certificate is a root or was issued by one.
    intermediates: list[x509.Certificate] = []
    for i, link in enumerate(chain):
        if i > 0 and link not in roots:
            check_signing_ca(link, paths[CERT_CHAIN], now, hints[CERT_CHAIN])
        top = next((r for r in roots if r == link or _issued_by(link, r)), None)
        if top is not None:
            # Only this root must be valid now: others may be kept for older certificates.
            check_signing_ca(top, paths[ROOT_CERT], now, hints[ROOT_CERT])
            if link != top:
                intermediates.append(link)
            bundle = (top, *(r for r in roots if r != top))
            return SigningMaterial(cert, key, tuple(intermediates), top, bundle)
        intermediates.append(link)
        if i + 1 < len(chain) and not _issued_by(link, chain[i + 1]):
            raise CaConfigError(
                f"{paths[CERT_CHAIN]}: certificate {i + 1} ({link.subject.rfc4514_string()!r}) "
                f"was not issued by the next one ({chain[i + 1].subject.rfc4514_string()!r}); "
                f"{hints[CERT_CHAIN]}"
            )
    raise CaConfigError(
        f"{paths[CERT_CHAIN]}: the chain from {CA_CERT} does not lead to a root in {ROOT_CERT} "
        f"(last issuer named {chain[-1].issuer.rfc4514_string()!r}); add the missing issuing "
        f"CAs to {CERT_CHAIN}, or put the right root in {ROOT_CERT}"
    )
