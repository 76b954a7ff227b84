"""Reading and writing the CA's PEM files, with errors that name the file and the fix."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from weft.ca.certificates import SigningKey
from weft.ca.errors import CaConfigError

ROOT_CERT = "root-cert.pem"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"


def _fail(path: Path, problem: str, hint: str) -> CaConfigError:
    return CaConfigError(f"{path}: {problem}; {hint}")


def read_certs(path: Path, hint: str) -> list[x509.Certificate]:
    """Every certificate in a PEM file; at least one."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror}", hint) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise _fail(path, f"not PEM certificates ({e})", hint) from None
    return certs


def read_key(path: Path, hint: str) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror}", hint) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise _fail(path, "the key is encrypted", "store it unencrypted, mode 0600") from None
    except ValueError as e:
        raise _fail(path, f"not a PEM private key ({e})", hint) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise _fail(path, f"unsupported key type {type(key).__name__}", "use an ECDSA or RSA key")
    return key


def check_key_matches(
    cert: x509.Certificate, key: SigningKey, cert_path: Path, key_path: Path
) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise _fail(
            key_path,
            f"this key does not belong to the certificate in {cert_path.name}",
            f"put the private key of {cert_path} here, or the certificate of this key there",
        )


def check_signing_ca(cert: x509.Certificate, path: Path, now: datetime, hint: str) -> None:
    """A certificate that may sign others, and is valid now."""
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise _fail(path, f"{cert.subject.rfc4514_string()!r} is not a CA certificate", hint)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not usage.key_cert_sign:
            raise _fail(path, "its key usage does not allow signing certificates", hint)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise _fail(
            path,
            f"not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)",
            hint,
        )


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by this user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` in one step, so a crash leaves the old content or the new, never half."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
