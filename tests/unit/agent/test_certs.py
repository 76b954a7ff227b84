"""WorkloadCertificates against a fake CA and a fake clock: no real hours are waited."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from weft.agent.caclient import CaRefused, CaUnavailable
from weft.agent.certs import WorkloadCertificates
from weft.agent.identity import generate_key, load_cert, parse_chain
from weft.errors import WeftError

from .test_identity import SigningCa

SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"
DAY = 86400.0
HALF = DAY / 2


class FakeClock:
    """Wall-clock time that moves only when a test says so; `sleep` waits for it."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))  # X.509 times have whole seconds
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self.sleepers.append(entry)
        try:
            await entry[1]
        finally:
            self.sleepers.remove(entry)

    @property
    def parked(self) -> bool:
        """Whether someone sleeps and has not been woken yet."""
        return any(not future.done() for _, future in self.sleepers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for until, future in self.sleepers:
            if until <= self.now and not future.done():
                future.set_result(None)


@dataclass
class FakeCa:
    """The CA as WorkloadCertificates sees it: an async callable signing with a test CA."""

    clock: FakeClock
    ca: SigningCa = field(default_factory=SigningCa)
    failure: Exception | None = None
    wrong_key: bool = False
    calls: int = 0
    ttls: list[float] = field(default_factory=list)

    async def __call__(self, csr_pem: str, ttl: float) -> list[str]:
        self.calls += 1
        self.ttls.append(ttl)
        if self.failure is not None:
            raise self.failure
        other = generate_key().public_key() if self.wrong_key else None
        return self.ca.issue(csr_pem, ttl, now=self.clock.now, public_key=other)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.002)


async def waiting(clock: FakeClock) -> None:
    """Until the rotation loop is parked in a sleep (not signing)."""
    await eventually(lambda: clock.parked, "the rotation loop going to sleep")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ca(clock: FakeClock) -> FakeCa:
    return FakeCa(clock)


@pytest.fixture
async def running(
    clock: FakeClock, ca: FakeCa
) -> AsyncIterator[Callable[..., WorkloadCertificates]]:
    tasks: list[asyncio.Task[None]] = []

    def start(**options: object) -> WorkloadCertificates:
        certs = WorkloadCertificates(
            SPIFFE,
            ca,
            requested_ttl=DAY,
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(7),
            **options,  # type: ignore[arg-type]
        )
        tasks.append(asyncio.create_task(certs.run()))
        return certs

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def leaf_of(certs: WorkloadCertificates) -> x509.Certificate:
    current = certs.current()
    assert current is not None
    return load_cert(current[1][0])


def public_key_of(key_text: str) -> bytes:
    key = serialization.load_pem_private_key(key_text.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def test_first_certificate_is_issued_at_start(
    running: Callable[..., WorkloadCertificates], ca: FakeCa
) -> None:
    certs = running()
    changes: list[int] = []
    certs.subscribe(lambda: changes.append(1))
    assert certs.current() is None

    await asyncio.wait_for(certs.issued.wait(), 5)

    current = certs.current()
    assert current is not None
    key_text, chain = current
    assert len(chain) == 1, "the root is not part of what Envoy presents"
    (leaf,) = parse_chain(chain)
    assert leaf.uri_sans == (SPIFFE,)
    assert public_key_of(key_text) == leaf_of(certs).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert certs.trust_bundle() == [ca.ca.root_pem], "the CA's root until the control plane's"
    assert ca.ttls == [DAY]
    assert certs.rotations == 0
    assert changes == [1]


async def test_rotation_at_half_life_with_a_new_key(
    running: Callable[..., WorkloadCertificates], ca: FakeCa, clock: FakeClock
) -> None:
    certs = running(jitter=0.0)
    changes: list[int] = []
    certs.subscribe(lambda: changes.append(1))
    await asyncio.wait_for(certs.issued.wait(), 5)
    first_key, _ = certs.current() or ("", [])
    first_serial = leaf_of(certs).serial_number
    assert certs.next_attempt_at == clock.now + HALF

    clock.advance(HALF - 1)
    await waiting(clock)
    assert ca.calls == 1 and certs.rotations == 0, "nothing happens before half-life"

    clock.advance(1)
    await eventually(lambda: certs.rotations == 1, "the rotation")

    second_key, _ = certs.current() or ("", [])
    assert public_key_of(second_key) != public_key_of(first_key)
    assert leaf_of(certs).serial_number != first_serial
    assert certs.next_attempt_at == clock.now + HALF, "the next rotation counts from the new one"
    assert changes == [1, 1]


async def test_rotation_time_is_jittered_within_a_tenth_of_the_second_half(
    running: Callable[..., WorkloadCertificates], clock: FakeClock
) -> None:
    certs = running()
    await asyncio.wait_for(certs.issued.wait(), 5)
    offsets = []
    for n in range(1, 6):
        issued = certs.certificate
        assert issued is not None
        offsets.append(issued.rotate_at - issued.received_at)
        await waiting(clock)
        clock.advance(issued.rotate_at - clock.now)
        await eventually(lambda n=n: certs.rotations == n, "a rotation")  # type: ignore[misc]
    assert all(HALF - HALF * 0.1 <= offset <= HALF + HALF * 0.1 for offset in offsets)
    assert len(set(offsets)) == len(offsets), "a fleet must not rotate in lockstep"


async def test_ca_down_is_retried_with_backoff_and_the_current_cert_kept(
    running: Callable[..., WorkloadCertificates], ca: FakeCa, clock: FakeClock
) -> None:
    certs = running(jitter=0.0)
    await asyncio.wait_for(certs.issued.wait(), 5)
    served = certs.current()
    ca.failure = CaUnavailable("the CA at 127.0.0.1:15012 is unavailable")
    await waiting(clock)
    clock.advance(HALF)

    delays = []
    for attempt in range(2, 12):
        await eventually(lambda a=attempt: ca.calls == a, "a retry")  # type: ignore[misc]
        await waiting(clock)
        delays.append(certs.next_attempt_at - clock.now)
        assert certs.current() == served
        clock.advance(delays[-1])

    bases = [min(10.0, 0.2 * 2**n) for n in range(len(delays))]
    assert all(0.8 * b <= d <= min(10.0, 1.2 * b) for b, d in zip(bases, delays, strict=True))
    assert delays[-1] == pytest.approx(10.0, rel=0.2), "backoff is capped"

    clock.advance(HALF)  # past expiry, CA still down: nothing better to serve
    await waiting(clock)
    assert certs.current() == served
    assert certs.rotations == 0

    ca.failure = None
    clock.advance(certs.next_attempt_at - clock.now)
    await eventually(lambda: certs.rotations == 1, "the rotation once the CA is back")
    assert certs.current() != served
    await waiting(clock)
    # X.509 times are whole seconds, the fake clock is not after fractional retries.
    assert certs.next_attempt_at == pytest.approx(clock.now + HALF, abs=1), "backoff was reset"


async def test_ca_down_at_start_is_retried_until_it_answers(
    running: Callable[..., WorkloadCertificates], ca: FakeCa, clock: FakeClock
) -> None:
    ca.failure = CaUnavailable("connection refused")
    certs = running()
    for _ in range(3):
        await waiting(clock)
        clock.advance(certs.next_attempt_at - clock.now)
    await waiting(clock)
    assert certs.current() is None and not certs.issued.is_set()

    ca.failure = None
    clock.advance(certs.next_attempt_at - clock.now)
    await asyncio.wait_for(certs.issued.wait(), 5)
    assert ca.calls == 5 and certs.rotations == 0


async def test_refusal_is_logged_with_the_cas_message_and_retried(
    running: Callable[..., WorkloadCertificates],
    ca: FakeCa,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca.failure = CaRefused(
        "the CA refused: PERMISSION_DENIED: token is for sa/ratings",
        "PERMISSION_DENIED",
        "token is for sa/ratings",
    )
    with caplog.at_level(logging.WARNING, logger="weft.agent.certs"):
        certs = running()
        await waiting(clock)
    assert any(
        r.levelno == logging.ERROR and "token is for sa/ratings" in r.getMessage()
        for r in caplog.records
    )
    ca.failure = None
    clock.advance(certs.next_attempt_at - clock.now)
    await asyncio.wait_for(certs.issued.wait(), 5)


async def test_a_certificate_for_another_key_is_not_served(
    running: Callable[..., WorkloadCertificates],
    ca: FakeCa,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca.wrong_key = True
    with caplog.at_level(logging.ERROR, logger="weft.agent.certs"):
        certs = running()
        await waiting(clock)
    assert certs.current() is None
    assert "for a different key" in caplog.text

    ca.wrong_key = False
    clock.advance(certs.next_attempt_at - clock.now)
    await asyncio.wait_for(certs.issued.wait(), 5)


async def test_trust_bundle_updates_notify_and_win_over_the_cas_root(
    running: Callable[..., WorkloadCertificates], ca: FakeCa, clock: FakeClock
) -> None:
    old_root, new_root = SigningCa("old").root_pem, SigningCa("new").root_pem
    certs = running(trust_bundle=[old_root])
    changes: list[int] = []
    unsubscribe = certs.subscribe(lambda: changes.append(1))
    await asyncio.wait_for(certs.issued.wait(), 5)
    assert certs.trust_bundle() == [old_root]
    assert changes == [1]

    certs.set_trust_bundle([old_root, new_root])
    certs.set_trust_bundle([old_root, new_root + "\n"])  # the same bundle: no change
    assert certs.trust_bundle() == [old_root, new_root]
    assert changes == [1, 1]

    unsubscribe()
    certs.set_trust_bundle([new_root])
    assert changes == [1, 1]
    with pytest.raises(ValueError, match="empty trust bundle"):
        certs.set_trust_bundle([])


async def test_without_a_bundle_from_the_control_plane_the_cas_roots_are_added(
    running: Callable[..., WorkloadCertificates], ca: FakeCa, clock: FakeClock
) -> None:
    certs = running()
    await asyncio.wait_for(certs.issued.wait(), 5)
    old_root = ca.ca.root_pem
    ca.ca = SigningCa("rotated root")
    await waiting(clock)
    clock.advance(certs.next_attempt_at - clock.now)
    await eventually(lambda: certs.rotations == 1, "the rotation")
    assert certs.trust_bundle() == [old_root, ca.ca.root_pem], "peers on the old root still pass"

    announced = ca.ca.root_pem
    certs.set_trust_bundle([announced])
    ca.ca = SigningCa("not announced")
    await waiting(clock)
    clock.advance(certs.next_attempt_at - clock.now)
    await eventually(lambda: certs.rotations == 2, "the rotation")
    assert certs.trust_bundle() == [announced], "the control plane's bundle is the whole truth"


async def test_a_broken_subscriber_does_not_stop_the_others(
    running: Callable[..., WorkloadCertificates],
) -> None:
    certs = running()
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    certs.subscribe(broken)
    certs.subscribe(lambda: seen.append("ok"))
    await asyncio.wait_for(certs.issued.wait(), 5)
    assert seen == ["ok"]


async def test_renew_raises_for_the_caller_when_the_ca_refuses(ca: FakeCa) -> None:
    certs = WorkloadCertificates(SPIFFE, ca)
    ca.failure = CaRefused("refused", "UNAUTHENTICATED", "no token")
    with pytest.raises(WeftError, match="refused"):
        await certs.renew()
    ca.failure = None
    issued = await certs.renew()
    assert issued.leaf.uri_sans == (SPIFFE,)


def test_rotation_fraction_is_checked() -> None:
    async def never(csr: str, ttl: float) -> list[str]:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="rotate_fraction"):
        WorkloadCertificates(SPIFFE, never, rotate_fraction=1.0)
