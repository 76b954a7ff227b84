"""Real Envoys (`weft run`, Bookinfo) join a control plane next to the load's streams: their
config is accepted, none NACKs, and a request goes through a sidecar."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import adsload
from bench.controlplane_cell import change_vs, nacks_in
from bench.controlplane_mesh import START_TIMEOUT_S, Admin, AdsLoad, start_control_plane, write_mesh
from bench.processes import child_named, rss_mib
from bench.push import REVIEWS_URL, SidecarClient, bookinfo_spec
from weft.cli.mesh import LocalMesh

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
