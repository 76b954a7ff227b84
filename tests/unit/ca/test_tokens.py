"""Bootstrap tokens: HMAC-signed claims a local workload presents to get its first certificate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weft.ca.errors import AuthenticationFailed, CaConfigError
from weft.ca.tokens import BootstrapTokens, TokenClaims


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(tmp_path: Path, clock: Clock) -> BootstrapTokens:
    return BootstrapTokens.load_or_create(tmp_path, clock=clock)


def test_round_trip(tokens: BootstrapTokens, clock: Clock) -> None:
    token = tokens.issue("default", "bookinfo-reviews", "reviews-v1", ttl=600)
    assert token.startswith("weft1.") and token.count(".") == 2
    assert tokens.verify(token) == TokenClaims(
        "default", "bookinfo-reviews", "reviews-v1", clock.now + 600
    )


def test_expiry_uses_the_clock(tokens: BootstrapTokens, clock: Clock) -> None:
    token = tokens.issue("default", "reviews", "reviews-v1", ttl=600)
    clock.now += 599.9
    assert tokens.verify(token).workload == "reviews-v1"
    clock.now += 0.1
    with pytest.raises(AuthenticationFailed, match="default/reviews-v1 expired at 2023-11-14"):
        tokens.verify(token)


def _reencode(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def test_changed_claims_fail_the_signature(tokens: BootstrapTokens) -> None:
    version, payload, signature = tokens.issue("default", "reviews", "reviews-v1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["service_account"] = "admin"
    with pytest.raises(AuthenticationFailed, match="bad signature"):
        tokens.verify(f"{version}.{_reencode(claims)}.{signature}")


@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_character_is_refused(position: int, replacement: str) -> None:
    tokens = BootstrapTokens(b"k" * 32, clock=Clock())
    token = tokens.issue("default", "reviews", "reviews-v1")
    position %= len(token)
    if token[position] == replacement:
        return
    forged = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(AuthenticationFailed):
        tokens.verify(forged)


@pytest.mark.parametrize(
    "token", ["", "Bearer", "weft1.abc", "weft2.e30.AAAA", "weft1.a.b.c", "weft1.ü.x"]
)
def test_malformed_tokens(tokens: BootstrapTokens, token: str) -> None:
    with pytest.raises(AuthenticationFailed, match=r"malformed|bad signature"):
        tokens.verify(token)


def test_signed_but_incomplete_claims_are_malformed(clock: Clock) -> None:
    tokens = BootstrapTokens(b"k" * 32, clock=clock)
    signed = f"weft1.{_reencode({'namespace': 'default'})}"
    mac = hmac.new(b"k" * 32, signed.encode(), hashlib.sha256).digest()
    token = f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(AuthenticationFailed, match="malformed bootstrap token claims"):
        tokens.verify(token)


def test_key_is_private_and_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    token = BootstrapTokens.load_or_create(tmp_path, clock=clock).issue("ns", "sa", "w")
    key_file = tmp_path / "ca" / "token-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32

    assert BootstrapTokens.load_or_create(tmp_path, clock=clock).verify(token).namespace == "ns"
    elsewhere = BootstrapTokens.load_or_create(tmp_path / "other", clock=clock)
    with pytest.raises(AuthenticationFailed, match="another control plane"):
        elsewhere.verify(token)


def test_damaged_key_file(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "token-key").write_bytes(b"short")
    with pytest.raises(CaConfigError, match="token-key: a token key is 32 random bytes"):
        BootstrapTokens.load_or_create(tmp_path)


def test_names_no_identity_can_have_are_refused(tokens: BootstrapTokens) -> None:
    with pytest.raises(ValueError, match="namespace"):
        tokens.issue("a/b", "sa", "w")
    with pytest.raises(ValueError, match="positive"):
        tokens.issue("ns", "sa", "w", ttl=0)
