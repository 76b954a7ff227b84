"""The workload's certificate over time: first issue, rotation at half-life, root bundle updates.

A new key is made for every certificate, as Istio's agent does, so a leaked key is only ever
good until the next rotation.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from weft.agent.caclient import CaRefused, CaUnavailable
from weft.agent.identity import (
    CertificateError,
    CertInfo,
    KeyKind,
    PrivateKey,
    cert_info,
    generate_key,
    key_pem,
    load_cert,
    make_csr,
    same_public_key,
)

log = logging.getLogger("weft.agent.certs")

Signer = Callable[[str, float], Awaitable[list[str]]]
"""Signs a PEM CSR for a TTL in seconds; returns the chain, leaf first (`CaClient` fits)."""
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Listener = Callable[[], None]

DEFAULT_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the workload holds: its key, what Envoy serves, and when to renew."""

    key_pem: str
    chain: tuple[str, ...]  # leaf and intermediates: what Envoy presents
    root: str | None  # the chain's root as the CA sent it, if it did
    leaf: CertInfo
    received_at: float
    rotate_at: float

    @property
    def expires_at(self) -> float:
        return self.leaf.not_after.timestamp()


class WorkloadCertificates:
    """Owns the workload's key, certificate chain and trust bundle, and keeps them fresh.

    `run()` gets a certificate, then renews it at `rotate_fraction` of its lifetime (with
    jitter, so a fleet does not renew at once). While the CA is down it retries with backoff
    and keeps serving the current certificate, which is all Envoy can use anyway.
    """

    def __init__(
        self,
        spiffe_uri: str,
        sign: Signer,
        *,
        requested_ttl: float = DEFAULT_TTL_S,
        trust_bundle: Sequence[str] = (),
        key_kind: KeyKind = "EC",
        rotate_fraction: float = 0.5,
        jitter: float = 0.1,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
        sign_timeout: float = 30.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        max_sleep: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < rotate_fraction < 1:
            raise ValueError(f"rotate_fraction must be between 0 and 1, got {rotate_fraction}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.spiffe_uri = spiffe_uri
        self.requested_ttl = requested_ttl
        self._sign = sign
        self._key_kind: KeyKind = key_kind
        self._rotate_fraction = rotate_fraction
        self._jitter = jitter
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._sign_timeout = sign_timeout
        self._clock = clock
        self._sleep = sleep
        # The wall clock is checked at least this often, so a suspended laptop that wakes up
        # past the renewal time renews at once rather than when a monotonic sleep ends.
        self._max_sleep = max_sleep
        self._rng = rng or random.Random()
        self._bundle = _normalized(trust_bundle)
        # Until the control plane hands out a bundle, the roots the CA sends are trusted.
        self._bundle_from_ca = not self._bundle
        self._issued: IssuedCertificate | None = None
        self._listeners: list[Listener] = []
        self._failures = 0
        self._retry_at: float | None = None
        self._expired_reported = False
        self.rotations = 0
        """Certificates that replaced an earlier one (the first issue does not count)."""
        self.issued = asyncio.Event()
        """Set once the first certificate is in hand."""

    # -- what the workload has ---------------------------------------------------------------

    @property
    def certificate(self) -> IssuedCertificate | None:
        return self._issued

    def current(self) -> tuple[str, list[str]] | None:
        """(key PEM, chain PEMs without the root), or None before the first certificate."""
        if self._issued is None:
            return None
        return self._issued.key_pem, list(self._issued.chain)

    def trust_bundle(self) -> list[str]:
        return list(self._bundle)

    def set_trust_bundle(self, pems: Sequence[str]) -> None:
        """Trust exactly these roots (a root rotation hands out old and new together)."""
        bundle = _normalized(pems)
        if not bundle:
            raise ValueError("refusing an empty trust bundle: no peer could be verified")
        self._bundle_from_ca = False
        if bundle != self._bundle:
            self._bundle = bundle
            self._notify()

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call `callback` whenever the certificate or the bundle changes; returns unsubscribe."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    @property
    def next_attempt_at(self) -> float:
        """When `run` next asks the CA (wall-clock seconds)."""
        if self._retry_at is not None:
            return self._retry_at
        if self._issued is None:
            return self._clock()
        return self._issued.rotate_at

    # -- keeping it fresh --------------------------------------------------------------------

    async def run(self) -> None:
        """Issue, then rotate, forever; cancel to stop."""
        while True:
            await self._sleep_until_next_attempt()
            try:
                await self.renew()
            except Exception as exc:  # every failure is retried: the workload needs a cert
                self._retry_at = self._clock() + self._backoff()
                self._report(exc)

    async def renew(self) -> IssuedCertificate:
        """Make a new key, have it certified, and serve it; raises if the CA did not sign."""
        key, csr = await asyncio.to_thread(self._new_request)
        async with asyncio.timeout(self._sign_timeout):
            chain = await self._sign(csr, self.requested_ttl)
        received_at = self._clock()
        issued = self._accept(key, chain, received_at)
        replaced = self._issued is not None
        self._issued = issued
        self._expired_reported = False
        self._failures = 0
        self._retry_at = None
        if replaced:
            self.rotations += 1
        if self._bundle_from_ca and issued.root is not None and issued.root not in self._bundle:
            # Added, never replaced: peers may still hold certificates from the older root.
            self._bundle.append(issued.root)
        log.info(
            "workload certificate %s for %s, serial %s, valid until %s, renewal at %s",
            "rotated" if replaced else "issued",
            self.spiffe_uri,
            issued.leaf.serial,
            issued.leaf.not_after.isoformat(),
            time.strftime("%H:%M:%S", time.localtime(issued.rotate_at)),
        )
        self.issued.set()
        self._notify()
        return issued

    def _new_request(self) -> tuple[PrivateKey, str]:
        key = generate_key(self._key_kind)
        return key, make_csr(key, self.spiffe_uri)

    def _accept(self, key: PrivateKey, chain: list[str], received_at: float) -> IssuedCertificate:
        if not chain:
            raise CertificateError("the CA returned an empty certificate chain")
        certs = [load_cert(pem) for pem in chain]
        leaf = cert_info(certs[0])
        if not same_public_key(key, certs[0]):
            raise CertificateError(
                f"the CA returned a certificate (serial {leaf.serial}) for a different key"
            )
        if leaf.not_after.timestamp() <= received_at:
            raise CertificateError(
                f"the CA returned a certificate that expired at {leaf.not_after.isoformat()}"
            )
        if self.spiffe_uri not in leaf.uri_sans:
            log.warning(
                "the CA certified %s as %s, not %s as requested",
                self.spiffe_uri,
                ", ".join(leaf.uri_sans) or "no URI SAN",
                self.spiffe_uri,
            )
        root: str | None = None
        served = list(chain)
        if len(certs) > 1 and certs[-1].subject == certs[-1].issuer:
            root = served.pop()
        return IssuedCertificate(
            key_pem=key_pem(key),
            chain=tuple(_normalized(served)),
            root=_normalized([root])[0] if root else None,
            leaf=leaf,
            received_at=received_at,
            rotate_at=self._rotation_time(leaf, received_at),
        )

    def _rotation_time(self, leaf: CertInfo, received_at: float) -> float:
        # A CA may backdate not_before for clock skew; the life left counts from receipt.
        start = max(leaf.not_before.timestamp(), received_at)
        life = max(0.0, leaf.not_after.timestamp() - start)
        spread = life * (1 - self._rotate_fraction) * self._jitter
        return start + life * self._rotate_fraction + self._rng.uniform(-spread, spread)

    def _backoff(self) -> float:
        delay = min(self._max_backoff, self._initial_backoff * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return min(self._max_backoff, delay * self._rng.uniform(0.8, 1.2))

    async def _sleep_until_next_attempt(self) -> None:
        # Re-read each time: a `renew()` from outside moves the next attempt.
        while (remaining := self.next_attempt_at - self._clock()) > 0:
            await self._sleep(min(remaining, self._max_sleep))

    def _report(self, exc: Exception) -> None:
        assert self._retry_at is not None
        wait = max(0.0, self._retry_at - self._clock())
        issued = self._issued
        if issued is None:
            serving = "no certificate yet: mTLS listeners and clusters wait"
        elif issued.expires_at <= self._clock():
            serving = f"the certificate (serial {issued.leaf.serial}) has EXPIRED"
            if not self._expired_reported:
                self._expired_reported = True
                log.error("workload certificate for %s expired; %s", self.spiffe_uri, exc)
        else:
            serving = f"still serving serial {issued.leaf.serial} until its expiry"
        if isinstance(exc, CaUnavailable | TimeoutError):
            level, what = logging.WARNING, str(exc) or f"no answer within {self._sign_timeout}s"
        elif isinstance(exc, CaRefused | CertificateError):
            level, what = logging.ERROR, str(exc)
        else:
            level, what = logging.ERROR, f"{type(exc).__name__}: {exc}"
        log.log(level, "certificate for %s: %s; %s; retry in %.1fs", self.spiffe_uri, what,
                serving, wait)  # fmt: skip

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:  # one broken subscriber must not stop the others
                log.exception("certificate subscriber %r failed", callback)


def _normalized(pems: Sequence[str | None]) -> list[str]:
    """PEMs stripped and newline-terminated, without repeats, order kept."""
    out: list[str] = []
    for pem in pems:
        if pem is None:
            continue
        text = pem.strip() + "\n"
        if text.strip() and text not in out:
            out.append(text)
    return out
