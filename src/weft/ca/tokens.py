"""Bootstrap tokens: how a local workload proves who it is before it has a certificate.

A token is `weft1.<base64url JSON claims>.<base64url HMAC-SHA256>`, signed with a key kept in
`<state_dir>/ca/token-key` (mode 0600) so that tokens outlive a control-plane restart. It binds
a namespace, service account and workload name until an expiry time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from weft.ca.errors import AuthenticationFailed, CaConfigError
from weft.ca.identity import check_name
from weft.ca.pemfiles import private_dir, write_atomic

VERSION = "weft1"
KEY_FILE = "token-key"
KEY_BYTES = 32
DEFAULT_TOKEN_TTL = 600.0


@dataclass(frozen=True)
class TokenClaims:
    namespace: str
    service_account: str
    workload: str
    expires_at: float  # seconds since the epoch


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BootstrapTokens:
    """Issues and verifies bootstrap tokens with one secret key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a token key is {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self._clock = clock

    @classmethod
    def load_or_create(
        cls, state_dir: Path, clock: Callable[[], float] = time.time
    ) -> BootstrapTokens:
        """The key in `<state_dir>/ca/token-key`, made on first use."""
        path = private_dir(state_dir / "ca") / KEY_FILE
        if not path.exists():
            write_atomic(path, secrets.token_bytes(KEY_BYTES), mode=0o600)
        try:
            key = path.read_bytes()
        except OSError as e:
            raise CaConfigError(f"{path}: cannot read the token key: {e.strerror}") from None
        if len(key) != KEY_BYTES:
            raise CaConfigError(
                f"{path}: a token key is {KEY_BYTES} random bytes, this file has {len(key)}; "
                "remove it to make a new key (tokens already handed out then stop working)"
            )
        return cls(key, clock)

    def _mac(self, signed_part: str) -> bytes:
        return hmac.new(self._key, signed_part.encode(), hashlib.sha256).digest()

    def issue(
        self,
        namespace: str,
        service_account: str,
        workload: str,
        ttl: float = DEFAULT_TOKEN_TTL,
    ) -> str:
        """A token for this workload, valid for `ttl` seconds."""
        check_name("namespace", namespace)
        check_name("service account", service_account)
        if not workload:
            raise ValueError("a token needs a workload name")
        if ttl <= 0:
            raise ValueError(f"token TTL must be positive, not {ttl:g}s")
        claims = {
            "namespace": namespace,
            "service_account": service_account,
            "workload": workload,
            "exp": round(self._clock() + ttl, 3),
        }
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        signed_part = f"{VERSION}.{payload}"
        return f"{signed_part}.{_b64encode(self._mac(signed_part))}"

    def verify(self, token: str) -> TokenClaims:
        """The token's claims, if this key signed it and it has not expired."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            raise AuthenticationFailed(
                f"malformed bootstrap token: expected {VERSION}.<claims>.<signature>"
            )
        # Compared as text, so only the one canonical encoding of the MAC is accepted.
        expected = _b64encode(self._mac(f"{parts[0]}.{parts[1]}"))
        if not hmac.compare_digest(parts[2].encode(), expected.encode()):
            raise AuthenticationFailed(
                "bootstrap token has a bad signature: it was altered, or issued by another "
                "control plane (or before its token key was replaced)"
            )
        try:
            raw = json.loads(_b64decode(parts[1]))
            claims = TokenClaims(
                namespace=_text(raw["namespace"]),
                service_account=_text(raw["service_account"]),
                workload=_text(raw["workload"]),
                expires_at=_number(raw["exp"]),
            )
            check_name("namespace", claims.namespace)
            check_name("service account", claims.service_account)
        except (ValueError, binascii.Error, KeyError, TypeError) as e:
            raise AuthenticationFailed(f"malformed bootstrap token claims ({e})") from None
        if self._clock() >= claims.expires_at:
            when = datetime.fromtimestamp(claims.expires_at, UTC).isoformat(timespec="seconds")
            raise AuthenticationFailed(
                f"bootstrap token for {claims.namespace}/{claims.workload} expired at {when}; "
                "get a new token from the control plane"
            )
        return claims


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)
