"""Checking a workload's certificate signing request before anything is signed."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from weft.ca.certificates import SubjectKey
from weft.ca.errors import CsrRefused, IdentityMismatch
from weft.ca.identity import SpiffeId

MIN_RSA_BITS = 2048
EC_CURVES = (ec.SECP256R1, ec.SECP384R1)


def _names(csr: x509.CertificateSigningRequest) -> list[str]:
    """Every name the CSR asks for, as 'URI:...', 'DNS:...', 'IP:...' or the raw form."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for name in san:
        if isinstance(name, x509.UniformResourceIdentifier):
            names.append(name.value)
        elif isinstance(name, x509.DNSName):
            names.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            names.append(f"IP:{name.value}")
        else:
            names.append(f"{type(name).__name__}:{name.value}")
    return names


def check_csr(csr_pem: str | bytes, identity: SpiffeId) -> SubjectKey:
    """The CSR's public key, if the CSR is well formed and asks for `identity` only."""
    raw = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    try:
        csr = x509.load_pem_x509_csr(raw.strip())
    except ValueError as e:
        raise CsrRefused(f"not a PEM certificate signing request ({e})") from None
    try:
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CsrRefused(f"the CSR's key or signature cannot be read ({e})") from None
    if not valid:
        raise CsrRefused(
            "the CSR's signature does not match its public key; send an unmodified CSR"
        )
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(
                f"RSA key of {key.key_size} bits is too weak; use at least {MIN_RSA_BITS} bits "
                "or an ECDSA P-256 key"
            )
    elif not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, EC_CURVES)):
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise CsrRefused(
            f"unsupported key {kind}; use ECDSA P-256 or P-384, or RSA of {MIN_RSA_BITS}+ bits"
        )

    try:
        names = _names(csr)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise CsrRefused(f"the CSR's subject alternative names cannot be read ({e})") from None
    for name in names:
        if name != identity.uri:
            raise IdentityMismatch(name, identity.uri)
    # The subject is ignored in the certificate, but one naming someone else is a wrong request.
    subject = list(csr.subject)
    only_cn = len(subject) == 1 and subject[0].oid == NameOID.COMMON_NAME
    if subject and not (only_cn and subject[0].value == identity.uri):
        raise IdentityMismatch(f"subject {csr.subject.rfc4514_string()!r}", identity.uri)
    return key
