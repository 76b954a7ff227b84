"""`weft demo`: Bookinfo on one machine, real Envoy sidecars, Istio rules applied one by one."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from weft.cli.mesh import LocalMesh, WorkloadSpec
from weft.errors import WeftError

VERSIONS = ("v1", "v2", "v3")


def samples_dir() -> Path:
    """The Bookinfo sample, from WEFT_SAMPLES or the source tree this package lives in."""
    env = os.environ.get("WEFT_SAMPLES")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "samples")
    for c in candidates:
        if (c / "bookinfo" / "app.py").exists():
            return c
    raise WeftError("Bookinfo sample not found: set WEFT_SAMPLES to the repo's samples/ directory")


def bookinfo_workloads(samples: Path) -> list[WorkloadSpec]:
    app = str(samples / "bookinfo" / "app.py")
    specs = [
        WorkloadSpec("productpage", "v1"),
        WorkloadSpec("details", "v1"),
        WorkloadSpec("reviews", "v1"),
        WorkloadSpec("reviews", "v2"),
        WorkloadSpec("reviews", "v3"),
        WorkloadSpec("ratings", "v1"),
    ]
    for s in specs:
        s.command = [sys.executable, app, s.service]
        s.env = {"SERVICE_VERSION": s.version}
    return specs


@dataclass
class Tally:
    """Which reviews version answered, per kind of user."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.errors

    def share(self, version: str) -> float:
        ok = sum(self.counts.values())
        return 100.0 * self.counts[version] / ok if ok else 0.0


@dataclass(frozen=True)
class Step:
    title: str
    config: str | None  # file under samples/bookinfo/networking, applied before the step
    # (tally of anonymous users, tally of jason) -> failure reason or None
    check: Callable[[Tally, Tally], str | None]
    tolerance: str = ""


def _only(version: str, tally: Tally, who: str) -> str | None:
    if tally.errors:
        return f"{tally.errors} of {who}'s requests failed"
    others = {v: n for v, n in tally.counts.items() if v != version and n}
    if others:
        return f"{who}'s requests also reached {others}"
    return None


def _round_robin(anon: Tally, jason: Tally) -> str | None:
    if anon.errors:
        return f"{anon.errors} requests failed"
    low = [v for v in VERSIONS if anon.share(v) < 15.0]
    return f"versions {low} got under 15% of traffic" if low else None


def _split(anon: Tally, jason: Tally) -> str | None:
    if anon.errors:
        return f"{anon.errors} requests failed"
    if anon.counts["v2"]:
        return f"{anon.counts['v2']} requests reached v2"
    v1, v3 = anon.share("v1"), anon.share("v3")
    if abs(v1 - 80) > 10 or abs(v3 - 20) > 10:
        return f"v1 {v1:.1f}% / v3 {v3:.1f}% is outside 80/20 ±10"
    return None


STEPS = [
    Step("no rules: reviews round robin over v1, v2, v3", None, _round_robin, "each ≥ 15%"),
    Step(
        "all traffic to v1",
        "virtual-service-all-v1.yaml",
        lambda a, j: _only("v1", a, "everyone") or _only("v1", j, "jason"),
        "100%",
    ),
    Step("80/20 split v1/v3", "virtual-service-reviews-80-20.yaml", _split, "±10 points"),
    Step(
        "end-user: jason -> v2, everyone else v1",
        "virtual-service-reviews-jason-v2.yaml",
        lambda a, j: _only("v1", a, "everyone else") or _only("v2", j, "jason"),
        "100%",
    ),
]


class Traffic:
    """Requests to productpage as an ingress would send them, tallied by reviews version."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )
        self.window: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=400)

    async def one(self, user: str | None) -> str:
        headers = {"end-user": user} if user else {}
        try:
            async with self.session.get(self.url, headers=headers) as resp:
                if resp.status != 200:
                    return f"HTTP {resp.status}"
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            return f"error {type(e).__name__}"
        reviews = body.get("reviews") or {}
        return str(reviews.get("version") or f"reviews error: {reviews.get('error', '?')}")

    async def batch(self, n: int, user: str | None, concurrency: int = 4) -> Tally:
        tally = Tally()
        sem = asyncio.Semaphore(concurrency)

        async def send() -> None:
            async with sem:
                result = await self.one(user)
            self.window.append((time.monotonic(), user or "anyone", result))
            if result in VERSIONS:
                tally.counts[result] += 1
            else:
                tally.errors += 1

        await asyncio.gather(*(send() for _ in range(n)))
        return tally

    async def close(self) -> None:
        await self.session.close()


async def _start_mesh(mesh: LocalMesh, out: Callable[[str], None]) -> int:
    samples = samples_dir()
    await mesh.start_control_plane()
    out(f"control plane up: xDS 127.0.0.1:{mesh.xds_port}, admin 127.0.0.1:{mesh.admin_port}")
    shutil.copy(samples / "bookinfo" / "networking" / "destination-rule-all.yaml", mesh.config_dir)
    specs = bookinfo_workloads(samples)
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs], timeout=40)
    await mesh.wait_synced(proxies=len(specs), timeout=30)
    out(f"{len(specs)} workloads up, each with its Envoy sidecar: " + ", ".join(mesh.workloads))
    return mesh.specs["productpage-v1"].inbound_port


async def _apply_step(mesh: LocalMesh, step: Step) -> None:
    if step.config is None:
        return
    before = await mesh.snapshot_version()
    await mesh.apply(samples_dir() / "bookinfo" / "networking" / step.config)
    await mesh.wait_synced(min_snapshot=before + 1, proxies=len(mesh.workloads))


async def run_check(mesh: LocalMesh, per_step: int) -> int:
    console = Console(highlight=False, width=max(Console().width, 160))
    started = time.monotonic()
    port = await _start_mesh(mesh, console.print)
    traffic = Traffic(f"http://127.0.0.1:{port}/productpage")
    failures = 0
    try:
        for number, step in enumerate(STEPS, 1):
            await _apply_step(mesh, step)
            anon = await traffic.batch(per_step, None)
            jason = await traffic.batch(max(per_step // 4, 20), "jason")
            problem = step.check(anon, jason)
            shares = " ".join(f"{v} {anon.share(v):.0f}%" for v in VERSIONS if anon.counts[v])
            jshares = " ".join(f"{v} {jason.share(v):.0f}%" for v in VERSIONS if jason.counts[v])
            detail = (
                f"{anon.total} requests: {shares}; jason ({jason.total}): {jshares}; "
                f"expected {step.tolerance}"
            )
            if problem is None:
                console.print(f"[green]PASS[/] step {number}: {step.title} — {detail}")
            else:
                failures += 1
                console.print(f"[red]FAIL[/] step {number}: {step.title} — {problem} ({detail})")
    finally:
        await traffic.close()
    elapsed = time.monotonic() - started
    verdict = "[green]all steps passed[/]" if not failures else f"[red]{failures} step(s) failed[/]"
    console.print(f"{verdict} in {elapsed:.1f}s")
    return 0 if not failures else 1


def _live_table(traffic: Traffic, step_no: int, step: Step, seconds_left: float) -> Group:
    now = time.monotonic()
    recent = [(u, r) for t, u, r in traffic.window if now - t < 5.0]
    table = Table(title="reviews versions answering (last 5 s)", title_justify="left")
    table.add_column("user")
    for v in VERSIONS:
        table.add_column(v, justify="right")
    table.add_column("errors", justify="right")
    for user in ("anyone", "jason"):
        results = [r for u, r in recent if u == user]
        n = len(results) or 1
        cells = []
        for v in VERSIONS:
            share = 100 * sum(r == v for r in results) / n
            bar = "█" * round(share / 10)
            cells.append(f"{bar} {share:3.0f}%")
        errors = sum(r not in VERSIONS for r in results)
        table.add_row(user, *cells, str(errors))
    caption = Text(f"step {step_no}/{len(STEPS)}: {step.title}", style="bold cyan")
    hint = Text(
        f"next step in {seconds_left:.0f}s" if seconds_left > 0 else "last step; Ctrl-C to stop",
        style="dim",
    )
    return Group(caption, table, hint)


async def run_live(mesh: LocalMesh, step_seconds: float = 10.0) -> int:
    console = Console()
    port = await _start_mesh(mesh, console.print)
    console.print(
        Panel(
            "Try it in another terminal:\n"
            f"  export WEFT_ADMIN=127.0.0.1:{mesh.admin_port}\n"
            "  weft proxy-status\n"
            f"  weft proxy-config routes productpage",
            title="weft demo",
        )
    )
    traffic = Traffic(f"http://127.0.0.1:{port}/productpage")

    async def load() -> None:
        while True:
            await traffic.batch(8, None)
            await traffic.batch(4, "jason")
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(load())
    try:
        with Live(console=console, refresh_per_second=4) as live:
            for number, step in enumerate(STEPS, 1):
                await _apply_step(mesh, step)
                ends = time.monotonic() + step_seconds
                last = number == len(STEPS)
                while last or time.monotonic() < ends:
                    live.update(_live_table(traffic, number, step, ends - time.monotonic()))
                    await asyncio.sleep(0.25)
    finally:
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await traffic.close()
    return 0


async def _demo(check: bool, per_step: int, work_dir: Path) -> int:
    mesh = LocalMesh(work_dir)
    try:
        if check:
            return await run_check(mesh, per_step)
        return await run_live(mesh)
    except WeftError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}\n(logs in {mesh.log_dir})")
        return 1
    finally:
        await mesh.stop()


def run_demo(check: bool, per_step: int, keep_dir: Path | None) -> int:
    work_dir = keep_dir or Path(tempfile.mkdtemp(prefix="weft-demo-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_demo(check, per_step, work_dir))
    except KeyboardInterrupt:
        print("\nstopped; every process the demo started has exited")
        return 0
    finally:
        if keep_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
