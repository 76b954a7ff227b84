"""Bulk changes: applying and deleting 1,000 and 10,000 objects at once, how long each takes,
and the longest the control plane stops answering meanwhile.

For each code under test (this tree and, with `--baseline REF`, that commit exported with
`git archive` to a temporary directory and run with its `src` first on PYTHONPATH), and each
size N, a fresh `weft control-plane` process gets one `POST /v1/config` of N objects (N/2
STATIC ServiceEntries, each with a VirtualService, as one YAML file: what `weft apply -f`
sends), then one delete of the same file. Measured per operation:

  answered  from sending the request until the admin API's answer;
  built     until /debug/syncz says no snapshot build is pending any more;
  pauses    while the operation runs (from the request until built), two probes send one
            small request at a time on loopback and time each: the admin API's `GET /ready`,
            and xDS (a new ADS stream per request, asking CDS for a proxy that a Sidecar
            scopes to its own namespace, so its config is tiny). Its worst request is the
            longest the control plane kept that server waiting.

An operation that has not answered within --timeout is recorded as a timeout (and that
control plane is stopped; its delete is not run).

    python -m bench.bulk --baseline REF [--sizes 1000,10000] [--timeout 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import report, synthetic
from bench.bulk_probes import AdsProbe, Probe, probe_node
from weft.cli.mesh import LocalMesh

NAME = "bulk"
COMMAND = "python -m bench.bulk"
SIZES = (1000, 10_000)
TIMEOUT_S = 150.0
ROOT = Path(__file__).resolve().parents[1]
PROBE_SIDECAR = b"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: probe}
spec:
  egress:
  - hosts: ["./*"]
"""


class _Mesh(LocalMesh):
    """A LocalMesh whose control plane runs the code under `src` when given."""

    def __init__(self, work_dir: Path, src: Path | None) -> None:
        super().__init__(work_dir)
        self._src = src

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        if self._src is not None:
            env["PYTHONPATH"] = str(self._src)
        return env


def export(ref: str, into: Path) -> tuple[str, Path]:
    """(short commit, its src directory), exported from this repository's history."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit, into / "src"


def this_tree() -> str:
    """The commit whose `src` is measured, marked when `src` has changes not committed."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return run.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "this tree"
    return commit + ("+changes" if git("status", "--porcelain", "--", "src") else "")


async def operation(
    mesh: LocalMesh, session: aiohttp.ClientSession, body: bytes, delete: bool, timeout: float
) -> dict[str, Any]:
    """One apply (or delete) of `body`, with both probes running from start until built."""
    admin = mesh.admin_url
    node = probe_node()
    ads = AdsProbe(f"127.0.0.1:{mesh.xds_port}", node)

    async def ready() -> None:
        async with session.get(f"{admin}/ready") as resp:
            await resp.read()

    probes = {"admin": Probe(ready), "xds": Probe(ads.request)}
    before = await syncz_snapshot(session, admin)
    deadline = time.monotonic() + timeout
    tasks = [asyncio.create_task(p.run(deadline)) for p in probes.values()]
    query = "?source=bulk.yaml" + ("&delete=true" if delete else "")
    started = time.monotonic()
    result: dict[str, Any] = {}
    try:
        async with session.post(f"{admin}/v1/config{query}", data=body) as resp:
            raw = await asyncio.wait_for(resp.read(), deadline - time.monotonic())
        # Parsed aside: the probes share this process's event loop.
        answer = await asyncio.to_thread(json.loads, raw)
        result["answered_s"] = round(time.monotonic() - started, 2)
        result["status"] = resp.status
        result["changed"] = sum(r["result"] != "unchanged" for r in answer.get("results", []))
        await until_built(session, admin, before, deadline)
        result["built_s"] = round(time.monotonic() - started, 2)
    except TimeoutError:
        result["timeout_s"] = timeout
    finally:
        for probe in probes.values():
            probe.stop()
        await asyncio.gather(*tasks)
        await ads.close()
    for name, probe in probes.items():
        result[name] = probe.summary() | {"worst": probe.worst(5, started)}
    return result


async def syncz_snapshot(session: aiohttp.ClientSession, admin: str) -> int:
    async with session.get(f"{admin}/debug/syncz") as resp:
        return int((await resp.json())["snapshot"])


async def until_built(
    session: aiohttp.ClientSession, admin: str, before: int, deadline: float
) -> None:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        async with session.get(f"{admin}/debug/syncz") as resp:
            syncz = await asyncio.wait_for(resp.json(), remaining)
        if int(syncz["snapshot"]) > before and not syncz["pending"]:
            return
        await asyncio.sleep(0.02)


async def measure(label: str, src: Path | None, size: int, timeout: float) -> dict[str, Any]:
    """A fresh control plane: apply `size` objects, then delete them."""
    work = Path(tempfile.mkdtemp(prefix="weft-bench-bulk-"))
    mesh = _Mesh(work, src)
    body = synthetic.external_services_yaml(size // 2).encode()
    figures: dict[str, Any] = {"code": label, "objects": size, "body_kib": len(body) // 1024}
    session = aiohttp.ClientSession(
        trust_env=False, timeout=aiohttp.ClientTimeout(total=timeout + 30)
    )
    try:
        await mesh.start_control_plane()
        async with session.post(f"{mesh.admin_url}/v1/config", data=PROBE_SIDECAR) as resp:
            assert resp.status == 200, await resp.text()
        for op, delete in (("apply", False), ("delete", True)):
            figures[op] = await operation(mesh, session, body, delete, timeout)
            if "timeout_s" in figures[op]:
                break
    finally:
        await session.close()
        await mesh.stop()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def _line(f: dict[str, Any]) -> str:
    parts = [f"{f['code']} N={f['objects']}:"]
    for op in ("apply", "delete"):
        r = f.get(op)
        if r is None:
            parts.append(f"{op} not run")
        elif "timeout_s" in r:
            parts.append(f"{op} > {r['timeout_s']:.0f} s")
        else:
            parts.append(
                f"{op} {r['answered_s']} s (built {r['built_s']} s), worst pause admin "
                f"{r['admin']['max_ms']} ms, xDS {r['xds']['max_ms']} ms"
            )
    return "  ".join(parts)


def _table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def cell(f: dict[str, Any], op: str, what: Callable[[dict[str, Any]], Any]) -> str:
        r = f.get(op)
        if r is None:
            return "not run"
        if "timeout_s" in r:
            return f"> {r['timeout_s']:.0f} s (timeout)"
        return str(what(r))

    def row(label: str, op: str, what: Callable[[dict[str, Any]], Any]) -> list[str]:
        return [label] + [cell(f, op, what) for f in runs]

    def pause(probe: str) -> Callable[[dict[str, Any]], Any]:
        return lambda r: f"{r[probe]['max_ms']} ({r[probe]['count']} requests)"

    rows: list[list[str]] = [["objects / YAML body, KiB"] + [
        f"{f['objects']} / {f['body_kib']}" for f in runs
    ]]  # fmt: skip
    for op in ("apply", "delete"):
        rows += [
            row(f"{op}: answered, s", op, lambda r: r["answered_s"]),
            row(f"{op}: snapshot built, s", op, lambda r: r["built_s"]),
            row(f"{op}: admin API worst pause, ms (probes)", op, pause("admin")),
            row(f"{op}: xDS worst pause, ms (probes)", op, pause("xds")),
            row(
                f"{op}: admin / xDS probe p50, ms",
                op,
                lambda r: f"{r['admin']['p50_ms']} / {r['xds']['p50_ms']}",
            ),
        ]
    columns = ["figure"] + [f"N={f['objects']}, {f['code']}" for f in runs]
    return {"columns": columns, "rows": rows}


async def run_async(sizes: tuple[int, ...], baseline: str | None, timeout: float) -> dict[str, Any]:
    codes: list[tuple[str, Path | None]] = []
    old_dir = Path(tempfile.mkdtemp(prefix="weft-bench-baseline-"))
    try:
        if baseline is not None:
            commit, old_src = export(baseline, old_dir)
            codes.append((f"before ({commit})", old_src))
        codes.append((f"after ({this_tree()})", None))
        runs = []
        for size in sizes:
            for label, code in codes:
                figures = await measure(label, code, size, timeout)
                print(_line(figures), flush=True)
                runs.append(figures)
    finally:
        shutil.rmtree(old_dir, ignore_errors=True)
    command = COMMAND + (f" --baseline {baseline}" if baseline else "")
    return report.result(NAME, command, {"runs": runs, "timeout_s": timeout}, _table(runs))


def run(
    sizes: tuple[int, ...] = SIZES, baseline: str | None = None, timeout: float = TIMEOUT_S
) -> dict[str, Any]:
    return asyncio.run(run_async(sizes, baseline, timeout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="objects per apply")
    parser.add_argument("--baseline", help="a commit to measure side by side with this tree")
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help="seconds one apply or delete may take"
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    path = report.write(run(sizes, args.baseline, args.timeout))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
