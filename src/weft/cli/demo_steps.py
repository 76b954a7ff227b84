"""The scenario `weft demo` walks through: Istio rules applied one by one, each with a check
of what the traffic does afterwards."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from weft.cli.jwt_issuer import JwtIssuer
from weft.cli.mesh import LocalMesh

VERSIONS = ("v1", "v2", "v3")


@dataclass
class Tally:
    """Which reviews version answered; anything else is an error."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + sum(self.errors.values())

    def share(self, version: str) -> float:
        ok = sum(self.counts.values())
        return 100.0 * self.counts[version] / ok if ok else 0.0

    def describe(self) -> str:
        shares = " ".join(f"{v} {self.share(v):.0f}%" for v in VERSIONS if self.counts[v])
        errors = f", errors {dict(self.errors)}" if self.errors else ""
        return f"{shares or 'no answers'}{errors}"


class Traffic:
    """Requests to productpage from the `sleep` client, through its sidecar (an HTTP proxy)."""

    def __init__(self, proxy_port: int) -> None:
        self.proxy = f"http://127.0.0.1:{proxy_port}"
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )
        self.token: str | None = None  # sent once productpage needs a JWT
        self.window: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=400)

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        try:
            async with self.session.get(url, headers=headers or {}, proxy=self.proxy) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as e:
            return 0, type(e).__name__

    async def page(self, user: str | None) -> str:
        """Which reviews version the product page showed, or what went wrong."""
        headers = {"end-user": user} if user else {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        status, body = await self.get("http://productpage:9080/productpage", headers)
        if status != 200:
            return f"HTTP {status}"
        import json

        reviews = json.loads(body).get("reviews") or {}
        return str(reviews.get("version") or "reviews failed")

    async def batch(self, n: int, user: str | None, concurrency: int = 4) -> Tally:
        tally = Tally()
        sem = asyncio.Semaphore(concurrency)

        async def send() -> None:
            async with sem:
                result = await self.page(user)
            self.window.append((time.monotonic(), user or "anyone", result))
            if result in VERSIONS:
                tally.counts[result] += 1
            else:
                tally.errors[result] += 1

        await asyncio.gather(*(send() for _ in range(n)))
        return tally

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Demo:
    """Everything a step may use."""

    mesh: LocalMesh
    traffic: Traffic
    networking: Path
    security: Path
    work_dir: Path
    per_step: int = 200
    issuer: JwtIssuer = field(default_factory=JwtIssuer)

    async def apply(self, path: Path) -> None:
        before = await self.mesh.snapshot_version()
        await self.mesh.apply(path)
        await self.mesh.wait_synced(min_snapshot=before + 1, proxies=len(self.mesh.workloads))

    async def settled(self, url: str, headers: dict[str, str] | None = None) -> int:
        """The status once a policy change reached every connection in use.

        Envoy applies a changed inbound listener to new connections and drains the old ones:
        each pooled keep-alive connection may serve one more request under the old policy.
        The demo's client uses at most 4 at once, so 5 answers in a row that agree are final.
        """
        deadline = time.monotonic() + 15
        run: list[int] = []
        while time.monotonic() < deadline:
            status, _ = await self.traffic.get(url, headers)
            run = [*run, status] if run and run[-1] == status else [status]
            if len(run) >= 5:
                return status
        return run[-1] if run else 0


Outcome = tuple[str | None, str]  # (what went wrong or None, what was seen)
Check = Callable[[Demo], Awaitable[Outcome]]


@dataclass(frozen=True)
class Step:
    title: str
    check: Check
    apply: tuple[str, ...] = ()  # files under samples/bookinfo, applied first


def _only(version: str, tally: Tally, who: str) -> str | None:
    if tally.errors:
        return f"{sum(tally.errors.values())} of {who}'s requests failed"
    others = {v: n for v, n in tally.counts.items() if v != version and n}
    return f"{who}'s requests also reached {others}" if others else None


async def _both(demo: Demo) -> tuple[Tally, Tally]:
    anyone = await demo.traffic.batch(demo.per_step, None)
    jason = await demo.traffic.batch(max(demo.per_step // 4, 20), "jason")
    return anyone, jason


def _seen(anyone: Tally, jason: Tally) -> str:
    return (
        f"{anyone.total} requests: {anyone.describe()}; jason ({jason.total}): {jason.describe()}"
    )


async def round_robin(demo: Demo) -> Outcome:
    anyone, jason = await _both(demo)
    low = [v for v in VERSIONS if anyone.share(v) < 15.0]
    if anyone.errors:
        return f"{sum(anyone.errors.values())} requests failed", _seen(anyone, jason)
    return (f"{low} got under 15% of traffic" if low else None), _seen(anyone, jason)


async def all_v1(demo: Demo) -> Outcome:
    anyone, jason = await _both(demo)
    return _only("v1", anyone, "everyone") or _only("v1", jason, "jason"), _seen(anyone, jason)


async def split_80_20(demo: Demo) -> Outcome:
    anyone, jason = await _both(demo)
    seen = _seen(anyone, jason) + " (expected 80/20 ±10)"
    if anyone.errors or anyone.counts["v2"]:
        return "requests failed or reached v2", seen
    v1, v3 = anyone.share("v1"), anyone.share("v3")
    if abs(v1 - 80) > 10 or abs(v3 - 20) > 10:
        return f"v1 {v1:.1f}% / v3 {v3:.1f}% is outside 80/20 ±10", seen
    return None, seen


async def jason_v2(demo: Demo) -> Outcome:
    anyone, jason = await _both(demo)
    return _only("v1", anyone, "everyone else") or _only("v2", jason, "jason"), _seen(anyone, jason)


async def strict_mtls(demo: Demo) -> Outcome:
    spec = demo.mesh.specs["reviews-v1"]
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(
                f"http://127.0.0.1:{spec.inbound_port}/reviews/0",
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp,
        ):
            plaintext = f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as e:
        plaintext = f"refused ({type(e).__name__})"
    anyone = await demo.traffic.batch(max(demo.per_step // 4, 20), None)
    seen = f"plaintext to reviews' sidecar: {plaintext}; mesh traffic: {anyone.describe()}"
    if not plaintext.startswith("refused"):
        return "a plaintext request got through", seen
    if anyone.errors:
        return "mesh traffic failed under STRICT", seen
    return None, seen


async def reviews_readers(demo: Demo) -> Outcome:
    direct = await demo.settled("http://reviews:9080/reviews/0")
    anyone = await demo.traffic.batch(max(demo.per_step // 4, 20), None)
    seen = f"sleep -> reviews: HTTP {direct}; productpage -> reviews: {anyone.describe()}"
    if direct != 403:
        return "another caller was not denied", seen
    if anyone.errors:
        return "productpage could not read reviews", seen
    return None, seen


async def jwt_required(demo: Demo) -> Outcome:
    url = "http://productpage:9080/productpage"
    good = {"authorization": f"Bearer {demo.issuer.token('jason')}"}
    forged = {"authorization": f"Bearer {JwtIssuer(demo.issuer.issuer).token('jason')}"}
    results = {
        "no token": await demo.settled(url),
        "forged token": await demo.settled(url, forged),
        "valid token": await demo.settled(url, good),
    }
    demo.traffic.token = demo.issuer.token("demo-user", expires_in=24 * 3600)
    seen = ", ".join(f"{k}: {v}" for k, v in results.items())
    expected = {"no token": 403, "forged token": 401, "valid token": 200}
    wrong = [k for k, v in results.items() if v != expected[k]]
    return (f"{wrong} answered wrongly (expected {expected})" if wrong else None), seen


async def write_request_authentication(demo: Demo) -> Path:
    path = demo.work_dir / "request-authentication-productpage.yaml"
    path.write_text(demo.issuer.request_authentication())
    return path


STEPS = [
    Step("no rules: reviews round robin over v1, v2, v3", round_robin),
    Step("all traffic to v1", all_v1, ("networking/virtual-service-all-v1.yaml",)),
    Step("80/20 split v1/v3", split_80_20, ("networking/virtual-service-reviews-80-20.yaml",)),
    Step(
        "end-user: jason -> v2, everyone else v1",
        jason_v2,
        ("networking/virtual-service-reviews-jason-v2.yaml",),
    ),
    Step(
        "STRICT mTLS: plaintext refused, mesh traffic works",
        strict_mtls,
        ("security/peer-authentication-strict.yaml",),
    ),
    Step(
        "AuthorizationPolicy: only productpage may read reviews",
        reviews_readers,
        ("security/authorization-policy-reviews.yaml",),
    ),
    Step(
        "JWT on /productpage: 403 without, 401 forged, 200 valid",
        jwt_required,
        ("<request-authentication>", "security/require-jwt-productpage.yaml"),
    ),
]


async def apply_step(demo: Demo, step: Step, samples: Path) -> None:
    for name in step.apply:
        if name == "<request-authentication>":
            await demo.apply(await write_request_authentication(demo))
        else:
            await demo.apply(samples / "bookinfo" / name)
