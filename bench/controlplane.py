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
import contextlib
import io
import json
import math
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import adsload, report, synthetic
from bench.processes import child_named, rss_mib
from bench.push import REVIEWS_URL, SidecarClient, bookinfo_spec
from weft.cli.mesh import Child, LocalMesh

NAME = "controlplane"
COMMAND = "python -m bench.controlplane"
SERVICES = (100, 1000, 5000)
PROXIES = (10, 100, 1000)
PROFILES = ("full", "scoped")
CELL_TIMEOUT_S = 120.0
START_TIMEOUT_S = 90.0
REPS = 3
SCOPE = 10  # services each scoped proxy sees
CHANGED = synthetic.service_name(0)  # every proxy sees it, in both profiles
DOCS_PER_FILE = 100
# A cell is not run when a smaller one predicts its connect alone takes this many timeouts.
SKIP_FACTOR = 2.0
# Targets at N=1000, M=1000, scoped.
TARGET_CELL = ("scoped", 1000, 1000)
TARGET_RDS_P99_MS, TARGET_EDS_P99_MS, TARGET_RSS_MIB = 1000.0, 500.0, 1024.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STREAMS = {"delta": "DeltaAggregatedResources", "sotw": "StreamAggregatedResources"}
ODD_RESPONSES = ("unchanged", "resent", "unasked", "disagree")  # as the load counts them
ROOT = Path(__file__).resolve().parents[1]


# --- the mesh ----------------------------------------------------------------------------
def sidecar_doc(workload: str, index: int, services: int) -> dict[str, Any]:
    """A Sidecar selecting `workload`: svc-00000 and 9 other services, spread over the mesh."""
    others = [1 + (index * (SCOPE - 1) + j) % (services - 1) for j in range(SCOPE - 1)]
    hosts = [f"./{synthetic.service_name(i)}" for i in [0, *others]]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": workload, "namespace": synthetic.NAMESPACE},
        "spec": {"workloadSelector": {"labels": {"app": workload}}, "egress": [{"hosts": hosts}]},
    }


def write_mesh(work: Path, services: int, proxies: int, profile: str) -> dict[str, int]:
    """Config files and the registry's persisted workloads, read by the control plane at start.

    Registrations are written as the registry persists them: one registration per request
    over the admin API rewrites the whole file, so N=5000 would take minutes to set up.
    """
    config, state = work / "config", work / "state"
    config.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    workloads = synthetic.registry(services).workloads()
    (state / "workloads.json").write_text(json.dumps([w.to_json() for w in workloads]))
    docs: list[dict[str, Any]] = []
    for i in range(0, services, synthetic.ROUTED_EVERY):
        host = synthetic.service_name(i)
        docs += [synthetic.destination_rule(host), virtual_service(host, 80)]
    if profile == "scoped":
        names = dict.fromkeys(adsload.workload_name(i) for i in range(proxies))
        docs += [sidecar_doc(w, n, services) for n, w in enumerate(names)]
    for first in range(0, len(docs), DOCS_PER_FILE):
        text = yaml.safe_dump_all(docs[first : first + DOCS_PER_FILE], sort_keys=False)
        (config / f"mesh-{first // DOCS_PER_FILE:04d}.yaml").write_text(text)
    return {"endpoints": len(workloads), "config_objects": len(docs)}


def virtual_service(host: str, v1_weight: int) -> dict[str, Any]:
    return synthetic.split_virtual_service(host, {"v1": v1_weight, "v2": 100 - v1_weight})


@dataclass
class Admin:
    """The control plane's admin API, with timeouts long enough for a long push."""

    url: str
    session: aiohttp.ClientSession

    async def post(self, path: str, data: bytes) -> None:
        async with self.session.post(f"{self.url}{path}", data=data) as resp:
            if resp.status != 200:
                raise RuntimeError(f"POST {path}: HTTP {resp.status} {await resp.text()}")

    async def ready(self) -> bool:
        try:
            async with self.session.get(f"{self.url}/ready") as resp:
                return resp.status == 200 and bool((await resp.json())["ready"])
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def syncz(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/debug/syncz") as resp:
            data: dict[str, Any] = await resp.json()
            return data


# --- processes ---------------------------------------------------------------------------
def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def start_control_plane(
    mesh: LocalMesh, work: Path, prof: Path | None, admin: Admin
) -> float:
    """`weft control-plane` with the mesh's ports and a registry TTL longer than the run (no
    heartbeats here); returns seconds until its admin API answers."""
    mesh.log_dir.mkdir(parents=True, exist_ok=True)
    log = mesh.log_dir / "control-plane.log"
    profiler = ["-m", "cProfile", "-o", str(prof)] if prof else []
    args = [
        sys.executable, *profiler, "-m", "weft", "control-plane",
        "--config-dir", str(mesh.config_dir), "--state-dir", str(work / "state"),
        "--xds-port", str(mesh.xds_port), "--admin-port", str(mesh.admin_port),
        "--ca-port", str(mesh.ca_port), "--registry-ttl", "86400",
    ]  # fmt: skip
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=_env(),
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    mesh.control_plane = Child("control-plane", proc, log)
    await mesh.until(admin.ready, START_TIMEOUT_S, "the control plane", mesh.control_plane)
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of `pid` (proc(5) fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


class AdsLoad:
    """The load tool as a child process, driven over its stdin/stdout JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._ids = 0

    @classmethod
    async def start(
        cls, xds: str, proxies: int, replicas: int, log: Path, protocol: adsload.Protocol
    ) -> AdsLoad:
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.adsload", "--xds", xds, "--proxies", str(proxies),
                "--namespace", synthetic.NAMESPACE, "--replicas", str(replicas),
                "--protocol", protocol,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                env=_env(), start_new_session=True, preexec_fn=_die_with_parent,
                limit=64 * 1024 * 1024,
            )  # fmt: skip
        load = cls(proc)
        await load._read(30)  # {"event": "started"}
        return load

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the load tool exited; see its log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, op: str, timeout: float = 30, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self._ids += 1
        command = {"id": self._ids, "op": op, "timeout": timeout, **args}
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read(timeout + 30)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask("quit", timeout=5)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# --- measuring ---------------------------------------------------------------------------
def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """Nearest-rank p50 / p99 / max, in ms."""
    ordered = sorted(samples_ms)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)

    return {"p50": rank(50), "p99": rank(99), "max": round(ordered[-1], 1), "n": len(ordered)}


def change_vs(rep: int) -> tuple[str, bytes]:
    doc = virtual_service(CHANGED, 50 if rep % 2 == 0 else 80)
    return "RDS", yaml.safe_dump(doc).encode()


def change_endpoint(rep: int) -> tuple[str, bytes]:
    instance = {
        "name": f"{CHANGED}-extra-{rep}",
        "namespace": synthetic.NAMESPACE,
        "service": CHANGED,
        "address": "127.0.0.1",
        "ports": [{"servicePort": synthetic.SERVICE_PORT, "targetPort": 61000 + rep}],
        "labels": {"app": CHANGED, "version": "v1"},
    }
    return "EDS", json.dumps(instance).encode()


async def one_change(
    kind: str, rep: int, load: AdsLoad, admin: Admin, cp_pid: int, timeout: float
) -> dict[str, Any]:
    """Make one change; per proxy, ms from the admin call until it ACKed the new version."""
    short, body = change_vs(rep) if kind == "vs" else change_endpoint(rep)
    watch = (await load.ask("arm", type=short))["watch"]
    cpu = cpu_seconds(cp_pid)
    before = await load.ask("status")
    t0 = time.monotonic()
    await admin.post("/v1/config?source=bench" if kind == "vs" else "/v1/workloads", body)
    call_ms = (time.monotonic() - t0) * 1000
    done = await load.ask("wait", watch=watch, timeout=max(1.0, timeout))
    cpu_s = cpu_seconds(cp_pid) - cpu
    acked = [(a - t0) * 1000 for a in done["acked"] if a is not None]
    received = [(r - t0) * 1000 for r in done["received"] if r is not None]
    after = await load.ask("status")
    return {
        "ok": done["ok"],
        "done": done["done"],
        "admin_call_ms": round(call_ms, 1),
        "acked_ms": acked,
        "first_received_ms": round(min(received), 1) if received else None,
        "cp_cpu_s": round(cpu_s, 3),
        "load_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "wall_s": round(time.monotonic() - t0, 2),
        "responses": responses_between(before, after),
    }


def responses_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per type, the responses the proxies got meanwhile (per proxy), and where not zero the
    load's counts of odd ones (totals): responses that changed nothing the proxy held;
    resources resent with the version it held; resources it had not subscribed to; responses
    whose version changed without new resources, or the reverse."""
    streams = max(1, after["streams"])
    found: dict[str, Any] = {}
    for short, now in after["types"].items():
        then = before["types"][short]
        per = (now["responses"] - then["responses"]) / streams
        odd = {k: now[k] - then[k] for k in ODD_RESPONSES if k in now}
        found[short] = {"per_proxy": round(per, 2), **{k: v for k, v in odd.items() if v}}
    return found


async def changes(
    kind: str, load: AdsLoad, admin: Admin, cp_pid: int, deadline: float, reps: int, share: float
) -> dict[str, Any]:
    """Up to `reps` changes; the first may take until `deadline`, more only while they fit in
    `share` of the time left. Percentiles are over every proxy's ACK of every change."""
    started = time.monotonic()
    budget = share * (deadline - started)
    runs: list[dict[str, Any]] = []
    for rep in range(reps):
        now = time.monotonic()
        if runs and now - started + 1.5 * runs[-1]["wall_s"] > budget:
            break
        runs.append(await one_change(kind, rep, load, admin, cp_pid, deadline - now))
        if not runs[-1]["ok"]:
            break
    acked = [ms for r in runs for ms in r["acked_ms"]]
    return {
        "ok": bool(runs) and all(r["ok"] for r in runs),
        "reps": len(runs),
        "responses": [r["responses"] for r in runs],
        "acked_ms": percentiles(acked) if acked else None,
        "done_last": runs[-1]["done"] if runs else 0,
        "first_received_ms": [r["first_received_ms"] for r in runs],
        "admin_call_ms": [r["admin_call_ms"] for r in runs],
        "cp_cpu_s_per_push": round(sum(r["cp_cpu_s"] for r in runs) / len(runs), 3),
        "load_cpu_s_per_push": round(sum(r["load_cpu_s"] for r in runs) / len(runs), 3),
    }


def nacks_in(syncz: dict[str, Any]) -> list[str]:
    return [
        f"{p['id']} {name}: {t['nack']}"
        for p in syncz["proxies"]
        for name, t in p["types"].items()
        if t["nack"]
    ]


async def measure_cell(
    profile: str,
    services: int,
    proxies: int,
    cell_timeout: float,
    reps: int,
    prof: Path | None,
    protocol: adsload.Protocol,
) -> dict[str, Any]:
    """One control plane, one load tool: connect, changes, memory. Always stops both."""
    work = Path(tempfile.mkdtemp(prefix="weft-bench-cp-"))
    mesh = LocalMesh(work)
    cell: dict[str, Any] = {"profile": profile, "services": services, "proxies": proxies}
    cell["protocol"] = protocol
    cell.update(write_mesh(work, services, proxies, profile))
    load: AdsLoad | None = None
    session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=600))
    try:
        admin = Admin(mesh.admin_url, session)
        cell["cp_start_s"] = round(await start_control_plane(mesh, work, prof, admin), 2)
        assert mesh.control_plane is not None
        pid = mesh.control_plane.proc.pid
        await asyncio.sleep(1.0)  # let start-up garbage settle before reading memory
        rss_before = rss_mib(pid) or 0.0
        cpu = cpu_seconds(pid)
        replicas = proxies if profile == "alike" else 1
        load = await AdsLoad.start(
            f"127.0.0.1:{mesh.xds_port}", proxies, replicas, mesh.log_dir / "adsload.log",
            protocol,
        )  # fmt: skip
        deadline = time.monotonic() + cell_timeout
        synced = await load.ask("wait_synced", timeout=cell_timeout)
        cell["load_errors"] = {
            k: synced[k] for k in ("errors", "gave_up", "first_errors", "nacks", "unreadable")
        }
        if not synced["ok"]:
            cell.update(status="timeout", phase="connect", synced=synced["synced"])
            cell["answered"] = synced["answered"]
            return cell
        times = [t - synced["started_at"] for t in synced["synced_at"]]
        rss_after = rss_mib(pid) or 0.0
        cell.update(
            connect_s=round(max(times), 2),
            connect_p50_s=round(sorted(times)[len(times) // 2], 2),
            connect_cp_cpu_s=round(cpu_seconds(pid) - cpu, 2),
            bytes_received_per_proxy={
                t: v["bytes"] // proxies for t, v in synced["types"].items() if v["bytes"]
            },
            resources_per_proxy={t: v["resources_max"] for t, v in synced["types"].items()},
            connect_responses_per_proxy={
                t: round(v["responses"] / proxies, 2) for t, v in synced["types"].items()
            },
            rss_before_mib=round(rss_before, 1),
            rss_after_mib=round(rss_after, 1),
            rss_per_proxy_kib=round((rss_after - rss_before) * 1024 / proxies, 1),
        )
        for kind, share in (("vs", 0.5), ("endpoint", 1.0)):
            result = await changes(kind, load, admin, pid, deadline, reps, share)
            cell[kind] = result
            if not result["ok"]:
                cell.update(status="timeout", phase=f"{kind} change")
                return cell
        syncz = await admin.syncz()
        cell["syncz_proxies"] = len(syncz["proxies"])
        # What the control plane says the streams spoke: the load's protocol, or a bug.
        cell["syncz_protocols"] = dict(Counter(p.get("protocol") for p in syncz["proxies"]))
        cell["nacks"] = nacks_in(syncz)[:5]
        cell["rss_end_mib"] = round(rss_mib(pid) or 0.0, 1)
        cell["rss_peak_mib"] = round(peak_rss_mib(pid) or 0.0, 1)
        cell["load_max_rss_mib"] = (await load.ask("status"))["max_rss_mib"]
        cell["status"] = "ok"
        return cell
    finally:
        if load is not None:
            await load.stop()
        cp = mesh.control_plane
        if prof is not None and cp is not None and cp.running:
            cp.proc.send_signal(signal.SIGINT)  # cProfile writes its file on a clean exit
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cp.proc.wait(), 30)
        await session.close()
        await mesh.stop()
        if cell.get("status") == "ok":
            shutil.rmtree(work, ignore_errors=True)
        else:
            cell["logs"] = str(mesh.log_dir)


# --- real Envoys -------------------------------------------------------------------------
ENVOY_WORKLOADS = (("productpage", "v1"), ("reviews", "v1"))
ENVOY_STATS = "update_rejected|active_clusters|warming_clusters|total_listeners_active"


async def envoy_stats(session: aiohttp.ClientSession, admin_port: int) -> dict[str, int]:
    url = f"http://127.0.0.1:{admin_port}/stats?filter={ENVOY_STATS}"
    async with session.get(url) as resp:
        text = await resp.text()
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        with contextlib.suppress(ValueError):
            found[name] = int(value)
    return found


async def check_envoys(
    services: int, load_proxies: int, count: int, protocol: adsload.Protocol
) -> dict[str, Any]:
    """Real Envoys (`weft run`, Bookinfo) next to the load's streams: all ACK, none NACKs."""
    work = Path(tempfile.mkdtemp(prefix="weft-bench-cp-envoy-"))
    mesh = LocalMesh(work)
    result: dict[str, Any] = {"services": services, "load_proxies": load_proxies}
    result["load_protocol"] = protocol
    write_mesh(work, services, load_proxies, "full")
    load: AdsLoad | None = None
    session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=120))
    client: SidecarClient | None = None
    try:
        await start_control_plane(mesh, work, None, Admin(mesh.admin_url, session))
        load = await AdsLoad.start(
            f"127.0.0.1:{mesh.xds_port}", load_proxies, 1, mesh.log_dir / "adsload.log", protocol
        )
        specs = [bookinfo_spec(s, v) for s, v in ENVOY_WORKLOADS[:count]]
        started = time.monotonic()
        for spec in specs:
            await mesh.start_workload(spec)
        await mesh.wait_registered([s.key for s in specs], timeout=START_TIMEOUT_S)
        await mesh.wait_synced(proxies=len(specs) + load_proxies, timeout=START_TIMEOUT_S)
        result["envoys_synced_s"] = round(time.monotonic() - started, 2)
        before = await mesh.snapshot_version()
        await Admin(mesh.admin_url, session).post("/v1/config?source=bench", change_vs(0)[1])
        started = time.monotonic()
        await mesh.wait_synced(before + 1, len(specs) + load_proxies, timeout=START_TIMEOUT_S)
        result["change_synced_s"] = round(time.monotonic() - started, 2)
        syncz = await mesh.syncz()
        envoys = [p for p in syncz["proxies"] if p["workload"].startswith(("productpage", "rev"))]
        result["envoys"] = {
            p["workload"]: {t: s["status"] for t, s in p["types"].items()} for p in envoys
        }
        result["nacks"] = nacks_in(syncz)
        stats: dict[str, dict[str, int]] = {}
        for p in envoys:
            url = f"{mesh.admin_url}/debug/config_dump?proxy={p['id']}"
            async with session.get(url) as dump:
                admin_port = (await dump.json())["adminPort"]
            stats[p["workload"]] = await envoy_stats(session, admin_port)
        result["envoy_stats"] = {
            w: {k: v for k, v in s.items() if v or "active" in k} for w, s in stats.items()
        }
        rejected = sum(v for s in stats.values() for k, v in s.items() if "update_rejected" in k)
        client = SidecarClient(mesh.specs["productpage-v1"].proxy_port)
        result["request_through_sidecar"] = await client.version(REVIEWS_URL)
        result["envoy_rss_mib"] = {
            key: round(rss_mib(pid) or 0.0, 1)
            for key, child in mesh.workloads.items()
            if (pid := child_named(child.proc.pid, "envoy")) is not None
        }
        result["ok"] = (
            not result["nacks"]
            and rejected == 0
            and len(envoys) == len(specs)
            and all(s == "SYNCED" for e in result["envoys"].values() for s in e.values())
            and result["request_through_sidecar"] == "v1"
        )
        return result
    finally:
        if client is not None:
            await client.close()
        if load is not None:
            await load.stop()
        await session.close()
        await mesh.stop()
        if result.get("ok"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            result["logs"] = str(mesh.log_dir)


# --- the matrix --------------------------------------------------------------------------
def predicted_connect_s(done: list[dict[str, Any]], profile: str, n: int, m: int) -> float:
    """Connect time of a cell, scaled linearly from the nearest smaller one of its profile: the
    same N with the most proxies, else the same M with the most services. A smaller cell that
    timed out while connecting predicts at least its timeout."""
    mine = [c for c in done if c["profile"] == profile and (c["services"], c["proxies"]) != (n, m)]
    same_n = [c for c in mine if c["services"] == n and c["proxies"] < m]
    same_m = [c for c in mine if c["proxies"] == m and c["services"] < n]
    for group, key in ((same_n, "proxies"), (same_m, "services")):
        if not group:
            continue
        cell = max(group, key=lambda c: c[key])
        measured = cell.get("connect_s")
        if measured is None and cell["status"] == "timeout" and cell.get("phase") == "connect":
            measured = cell["cell_timeout_s"]
        if measured is not None:
            scale: float = (m / cell["proxies"]) * (n / cell["services"])
            return float(measured) * scale
    return 0.0


def render_cell(cell: dict[str, Any]) -> list[str]:
    head = [cell["profile"], str(cell["services"]), str(cell["proxies"])]
    if cell["status"] == "not run":
        return [*head, f"not run (connect predicted ~{cell['predicted_connect_s']:.0f} s)"] + [
            ""
        ] * 5

    def pct(key: str) -> str:
        found = cell.get(key) or {}
        p = found.get("acked_ms")
        return f"{p['p50']:.0f} / {p['p99']:.0f} / {p['max']:.0f}" if p else "timeout"

    def cpu() -> str:
        parts = [
            str(cell[k]["cp_cpu_s_per_push"]) if k in cell else "-" for k in ("vs", "endpoint")
        ]
        return " / ".join(parts)

    connect = (
        f"{cell['connect_s']}"
        if "connect_s" in cell
        else (f"timeout ({cell.get('synced', 0)}/{cell['proxies']} synced)")
    )
    rss = (
        f"{cell['rss_before_mib']:.0f} → {cell['rss_after_mib']:.0f}"
        if "rss_after_mib" in cell
        else "-"
    )
    per = f"{cell['rss_per_proxy_kib']:.0f}" if "rss_per_proxy_kib" in cell else "-"
    return [*head, connect, pct("vs"), pct("endpoint"), cpu(), rss, per]


COLUMNS = [
    "profile",
    "N",
    "M",
    "connect, all M synced, s",
    "VS change → RDS ACK, ms p50 / p99 / max",
    "endpoint change → EDS ACK, ms p50 / p99 / max",
    "CP CPU s per push (VS / endpoint)",
    "CP RSS MiB (before → after connect)",
    "RSS per proxy, KiB",
]


def targets(cells: list[dict[str, Any]]) -> dict[str, Any]:
    profile, n, m = TARGET_CELL
    cell = next(
        (c for c in cells if (c["profile"], c["services"], c["proxies"]) == TARGET_CELL), None
    )
    if cell is None:
        return {"cell": f"{profile} N={n} M={m}", "measured": False}

    def p99(key: str) -> float | None:
        found = cell.get(key) or {}
        return found["acked_ms"]["p99"] if found.get("acked_ms") else None

    rds, eds = p99("vs"), p99("endpoint")
    rss = cell.get("rss_peak_mib") or cell.get("rss_after_mib")

    def verdict(value: float | None, limit: float) -> str:
        return "PASS" if value is not None and value <= limit and cell["status"] == "ok" else "MISS"

    return {
        "cell": f"{profile} N={n} M={m}",
        "measured": True,
        "vs_rds_p99_ms": {"value": rds, "target": TARGET_RDS_P99_MS,
                          "verdict": verdict(rds, TARGET_RDS_P99_MS)},
        "endpoint_eds_p99_ms": {"value": eds, "target": TARGET_EDS_P99_MS,
                                "verdict": verdict(eds, TARGET_EDS_P99_MS)},
        "cp_rss_mib": {"value": rss, "target": TARGET_RSS_MIB,
                       "verdict": verdict(rss, TARGET_RSS_MIB)},
    }  # fmt: skip


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
