"""One cell of the control-plane benchmark: a control plane and the load's M streams; the
time until all are synced, then per change the time until every proxy ACKed it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import adsload, synthetic
from bench.controlplane_mesh import (
    Admin,
    AdsLoad,
    cpu_seconds,
    peak_rss_mib,
    start_control_plane,
    virtual_service,
    write_mesh,
)
from bench.processes import rss_mib
from weft.cli.mesh import LocalMesh

CHANGED = synthetic.service_name(0)  # every proxy sees it, in both profiles
ODD_RESPONSES = ("unchanged", "resent", "unasked", "disagree")  # as the load counts them


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
