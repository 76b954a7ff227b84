"""What the control plane costs with N services and M proxies: connect, push to ACK, CPU, RSS.

For each N (services, 2-3 registered endpoints each; a DestinationRule and a VirtualService
for one in five) and M (proxies), a real control plane process serves M ADS streams opened
by `bench.adsload` in its own process, incremental (`--protocol delta`, the default: what
every Envoy `weft run` starts speaks) or state of the world (`--protocol sotw`), in one of
these profiles:

  full    every proxy sees every service;
  scoped  each proxy is selected by its own Sidecar whose egress hosts are 10 services
          (`./svc-00000`, which every proxy sees, and 9 others);
  alike   (on request) as full, but every proxy is a replica of one workload.

In full and scoped each proxy is its own workload (labels app=client-NNNNN), as distinct
`weft run` workloads are; every proxy has its own ports, as sidecars on one host do.

Measured: connect until every stream has ACKed CDS, EDS, LDS and RDS; after a VirtualService
change (svc-00000's weights) the time until each proxy ACKed new routes, and after an
endpoint change (one more svc-00000 instance registered) until each ACKed new endpoints,
from the admin API call, so with the control plane's 100 ms debounce; the control plane's
CPU seconds per push; its RSS before and after the proxies connect. Cells that do not finish
within --cell-timeout are recorded as timeouts; a cell whose connect alone a smaller cell
predicts to take over twice the timeout is not run, and says so. Then 2 real Envoys
(`weft run`, Bookinfo) join a control plane at N=1000 to show their config is accepted.

    python -m bench.controlplane [--services 100,1000,5000] [--proxies 10,100,1000]
        [--profiles full,scoped] [--protocol delta|sotw] [--cell-timeout 120] [--reps 3]
        [--envoys 2]
    python -m bench.controlplane --cprofile scoped:1000:1000   # where its time goes
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import adsload, report
from bench.controlplane_cell import measure_cell
from bench.controlplane_envoys import check_envoys
from bench.controlplane_mesh import ROOT
from bench.controlplane_table import COLUMNS, predicted_connect_s, render_cell, targets

NAME = "controlplane"
COMMAND = "python -m bench.controlplane"
SERVICES = (100, 1000, 5000)
PROXIES = (10, 100, 1000)
PROFILES = ("full", "scoped")
CELL_TIMEOUT_S = 120.0
REPS = 3
# A cell is not run when a smaller one predicts its connect alone takes this many timeouts.
SKIP_FACTOR = 2.0
STREAMS = {"delta": "DeltaAggregatedResources", "sotw": "StreamAggregatedResources"}


def source_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes then."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


async def run_async(args: argparse.Namespace) -> dict[str, Any]:
    cells: list[dict[str, Any]] = []
    started = time.monotonic()
    print(f"protocol: {args.protocol} ({STREAMS[args.protocol]})", flush=True)
    for profile in args.profiles:
        for n in args.services:
            for m in args.proxies:
                predicted = predicted_connect_s(cells, profile, n, m)
                if predicted > SKIP_FACTOR * args.cell_timeout and not args.no_skip:
                    cell = {"profile": profile, "services": n, "proxies": m}
                    cell.update(protocol=args.protocol, status="not run")
                    cell["predicted_connect_s"] = round(predicted)
                else:
                    cell = await measure_cell(
                        profile, n, m, args.cell_timeout, args.reps, None, args.protocol
                    )
                cell["cell_timeout_s"] = args.cell_timeout
                cells.append(cell)
                print(f"[{time.monotonic() - started:4.0f}s] {args.protocol} | "
                      + " | ".join(render_cell(cell)), flush=True)  # fmt: skip
    envoys: dict[str, Any] | None = None
    if args.envoys:
        envoys = await check_envoys(1000, 10, args.envoys, args.protocol)
        print(f"real Envoys at N=1000: {'OK' if envoys['ok'] else 'FAILED'} {envoys}", flush=True)
    figures = {
        "source": args.source,
        "protocol": args.protocol,
        "cell_timeout_s": args.cell_timeout,
        "total_s": round(time.monotonic() - started),
        "cells": cells,
        "targets": targets(cells),
        "envoys": envoys,
    }
    table = {"columns": COLUMNS, "rows": [render_cell(c) for c in cells]}
    return report.result(NAME, f"{COMMAND} --protocol {args.protocol}", figures, table)


def write(res: dict[str, Any], path: Path) -> Path:
    """The results file, atomically; the README's table is rendered from it when it is the
    benchmark's own results file (not a trial run's --out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, path)
    if path.resolve() == (report.RESULTS_DIR / f"{NAME}.json").resolve():
        report.update_readme()
    return path


async def profile_cell(
    spec: str, cell_timeout: float, out: Path, protocol: adsload.Protocol
) -> str:
    """One cell with the control plane under cProfile; the functions taking the most time."""
    profile, n, m = spec.split(":")
    cell = await measure_cell(profile, int(n), int(m), cell_timeout, 1, out, protocol)
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return f"{render_cell(cell)}\n{text.getvalue()}"


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=_sizes, default=SERVICES, help="N values")
    parser.add_argument("--proxies", type=_sizes, default=PROXIES, help="M values")
    parser.add_argument(
        "--profiles", type=lambda s: tuple(s.split(",")), default=PROFILES, help="full,scoped"
    )
    parser.add_argument(
        "--protocol",
        choices=adsload.PROTOCOLS,
        default="delta",
        help="the load's ADS: incremental, as sidecars speak it (default), or state of the world",
    )
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT_S)
    parser.add_argument("--reps", type=int, default=REPS, help="changes of each kind, at most")
    parser.add_argument("--envoys", type=int, default=2, help="real Envoys at N=1000 (0: none)")
    parser.add_argument("--no-skip", action="store_true", help="run every cell, however slow")
    parser.add_argument(
        "--cprofile",
        metavar="PROFILE:N:M",
        help="run one cell with the control plane under cProfile and print where time goes",
    )
    parser.add_argument(
        "--out", type=Path, default=report.RESULTS_DIR / f"{NAME}.json", help="results file"
    )
    parser.add_argument("--cprofile-out", type=Path, default=Path("/tmp/weft-controlplane.prof"))
    args = parser.parse_args(argv)
    if args.cprofile:
        found = profile_cell(args.cprofile, args.cell_timeout, args.cprofile_out, args.protocol)
        print(asyncio.run(found))
        print(f"profile written to {args.cprofile_out}")
        return 0
    args.source = source_state()
    res = asyncio.run(run_async(args))
    print(json.dumps(res["figures"]["targets"], indent=1))
    print(f"wrote {write(res, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
