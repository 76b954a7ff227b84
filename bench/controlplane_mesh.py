"""The control-plane benchmark's synthetic mesh and its processes: the config and registry
files a control plane reads at start, the control plane itself, and the ADS load tool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import adsload, synthetic
from weft.cli.mesh import Child, LocalMesh

START_TIMEOUT_S = 90.0
SCOPE = 10  # services each scoped proxy sees
DOCS_PER_FILE = 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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
