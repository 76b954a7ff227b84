"""`weft demo`: Bookinfo on one machine, real Envoy sidecars, Istio rules applied one by one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from weft.cli.demo_steps import STEPS, VERSIONS, Demo, Step, Traffic, apply_step
from weft.cli.mesh import LocalMesh, WorkloadSpec
from weft.errors import WeftError


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
        WorkloadSpec("sleep", "v1"),  # the client the demo's requests come from
    ]
    for s in specs:
        s.command = [sys.executable, app, s.service]
        s.env = {"SERVICE_VERSION": s.version}
    return specs


async def start_demo(mesh: LocalMesh, out: Callable[[str], None], per_step: int) -> Demo:
    samples = samples_dir()
    await mesh.start_control_plane()
    out(f"control plane up: xDS 127.0.0.1:{mesh.xds_port}, admin 127.0.0.1:{mesh.admin_port}")
    shutil.copy(samples / "bookinfo" / "networking" / "destination-rule-all.yaml", mesh.config_dir)
    specs = bookinfo_workloads(samples)
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs], timeout=40)
    await mesh.wait_synced(proxies=len(specs), timeout=30)
    out(
        f"{len(specs)} workloads up, each with its Envoy sidecar and a workload certificate: "
        + ", ".join(mesh.workloads)
    )
    return Demo(
        mesh=mesh,
        traffic=Traffic(mesh.specs["sleep-v1"].proxy_port),
        networking=samples / "bookinfo" / "networking",
        security=samples / "bookinfo" / "security",
        work_dir=mesh.work_dir,
        per_step=per_step,
    )


async def run_check(mesh: LocalMesh, per_step: int) -> int:
    console = Console(highlight=False, width=max(Console().width, 160))
    started = time.monotonic()
    demo = await start_demo(mesh, console.print, per_step)
    failures = 0
    try:
        for number, step in enumerate(STEPS, 1):
            await apply_step(demo, step, samples_dir())
            problem, seen = await step.check(demo)
            if problem is None:
                console.print(f"[green]PASS[/] step {number}: {step.title} — {seen}")
            else:
                failures += 1
                console.print(f"[red]FAIL[/] step {number}: {step.title} — {problem} ({seen})")
    finally:
        await demo.traffic.close()
    elapsed = time.monotonic() - started
    verdict = "[green]all steps passed[/]" if not failures else f"[red]{failures} step(s) failed[/]"
    console.print(f"{verdict} in {elapsed:.1f}s")
    return 0 if not failures else 1


def _live_view(traffic: Traffic, number: int, step: Step, seconds_left: float) -> Group:
    now = time.monotonic()
    recent = [(u, r) for t, u, r in traffic.window if now - t < 5.0]
    table = Table(title="reviews versions on the product page (last 5 s)", title_justify="left")
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
            cells.append(f"{'█' * round(share / 10)} {share:3.0f}%")
        errors = sum(r not in VERSIONS for r in results)
        table.add_row(user, *cells, str(errors))
    caption = Text(f"step {number}/{len(STEPS)}: {step.title}", style="bold cyan")
    hint = Text(
        f"next step in {seconds_left:.0f}s" if seconds_left > 0 else "last step; Ctrl-C to stop",
        style="dim",
    )
    return Group(caption, table, hint)


async def run_live(mesh: LocalMesh, step_seconds: float = 10.0) -> int:
    console = Console()
    demo = await start_demo(mesh, console.print, per_step=40)
    console.print(
        Panel(
            "Try it in another terminal:\n"
            f"  export WEFT_ADMIN=127.0.0.1:{mesh.admin_port}\n"
            "  weft proxy-status\n"
            "  weft proxy-config routes productpage\n"
            "  weft proxy-config secret reviews",
            title="weft demo",
        )
    )
    traffic = demo.traffic

    async def load() -> None:
        while True:
            await traffic.batch(8, None)
            await traffic.batch(4, "jason")
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(load())
    try:
        with Live(console=console, refresh_per_second=4) as live:
            for number, step in enumerate(STEPS, 1):
                await apply_step(demo, step, samples_dir())
                problem, seen = await step.check(demo)
                live.console.print(
                    f"[{'green' if problem is None else 'red'}]step {number}:[/] {step.title} — "
                    f"{problem or seen}"
                )
                ends = time.monotonic() + step_seconds
                last = number == len(STEPS)
                while last or time.monotonic() < ends:
                    live.update(_live_view(traffic, number, step, ends - time.monotonic()))
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
