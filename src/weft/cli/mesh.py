"""A whole mesh on this machine as child processes: a control plane and `weft run` workloads.

Used by `weft demo` and by the integration tests, so both drive the same commands a user runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from weft.agent.ports import free_port
from weft.contract.registration import Registration
from weft.controlplane.client import AdminClient
from weft.errors import ControlPlaneUnavailable, WeftError

_SESSION_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _pdeathsig() -> None:
    # Children die with the mesh owner even if it is killed outright.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, timeout: float = 10.0) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class WorkloadSpec:
    service: str
    version: str = "v1"
    command: list[str] = field(default_factory=list)
    service_port: int = 9080
    app_port: int = 0
    inbound_port: int = 0
    proxy_port: int = 0
    namespace: str = "default"
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.service}-{self.version}"


class LocalMesh:
    """Owns every process it starts and ends them, by PID, on `stop()`."""

    def __init__(self, work_dir: Path, xds_port: int | None = None, admin_port: int | None = None):
        self.work_dir = work_dir
        self.config_dir = work_dir / "config"
        self.log_dir = work_dir / "logs"
        self.xds_port = xds_port or free_port()
        self.admin_port = admin_port or free_port()
        self.ca_port = free_port()
        self.control_plane: Child | None = None
        self.control_plane_args: list[str] = []
        self.workloads: dict[str, Child] = {}
        self.specs: dict[str, WorkloadSpec] = {}
        self._session: aiohttp.ClientSession | None = None
        self.admin = AdminClient("127.0.0.1", self.admin_port)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["WEFT_XDS"] = f"127.0.0.1:{self.xds_port}"
        env["WEFT_ADMIN"] = f"127.0.0.1:{self.admin_port}"
        env["PYTHONUNBUFFERED"] = "1"
        for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            env.pop(var, None)
        return env

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches only the owner
                preexec_fn=_pdeathsig,
            )
        return Child(name, proc, log)

    @property
    def session(self) -> aiohttp.ClientSession:
        """For the tests' own HTTP calls (Envoy's admin API, ...); the control plane's admin
        API is `admin`."""
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False, timeout=_SESSION_TIMEOUT)
        return self._session

    # --- control plane -------------------------------------------------------------------
    async def start_control_plane(
        self, timeout: float = 20.0, extra_args: Sequence[str] = ()
    ) -> None:
        """Start (or restart, with the same ports) the control plane; `extra_args` are kept
        for restarts."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.control_plane_args = list(extra_args or self.control_plane_args)
        args = [
            sys.executable, "-m", "weft", "control-plane",
            "--config-dir", str(self.config_dir),
            "--xds-port", str(self.xds_port),
            "--admin-port", str(self.admin_port),
            "--ca-port", str(self.ca_port),
            "--registry-ttl", "10",
            *self.control_plane_args,
        ]  # fmt: skip
        self.control_plane = await self._spawn("control-plane", args, self.env)
        await self.until(self._cp_ready, timeout, "the control plane to answer", self.control_plane)

    async def stop_control_plane(self, kill: bool = False) -> None:
        cp = self.control_plane
        if cp is None:
            return
        if kill and cp.running:
            cp.proc.kill()
        await cp.stop()

    async def _cp_ready(self) -> bool:
        return await self.admin.ready()

    # --- workloads -----------------------------------------------------------------------
    async def start_workload(self, spec: WorkloadSpec) -> Child:
        spec.app_port = spec.app_port or free_port()
        spec.inbound_port = spec.inbound_port or free_port()
        spec.proxy_port = spec.proxy_port or free_port()
        args = [
            sys.executable, "-m", "weft", "run",
            "--service", spec.service, "--namespace", spec.namespace,
            *(["--version", spec.version] if spec.version else []),
            "--port", str(spec.app_port), "--service-port", str(spec.service_port),
            "--inbound-port", str(spec.inbound_port), "--proxy-port", str(spec.proxy_port),
            *spec.extra_args, "--", *spec.command,
        ]  # fmt: skip
        env = {**self.env, **spec.env}
        child = await self._spawn(spec.key, args, env)
        self.workloads[spec.key] = child
        self.specs[spec.key] = spec
        return child

    async def stop_workload(self, key: str) -> int:
        child = self.workloads.pop(key)
        return await child.stop()

    async def registered(self) -> list[Registration]:
        return await self.admin.workloads()

    async def wait_registered(self, keys: list[str], timeout: float = 30.0) -> None:
        """Until every named workload is registered and healthy."""

        async def ready() -> bool:
            try:
                found = {
                    f"{w.service}-{w.labels.get('version', '')}"
                    for w in await self.registered()
                    if w.healthy
                }
            except ControlPlaneUnavailable:
                return False
            return set(keys) <= found

        await self.until(ready, timeout, f"workloads {keys} to register", *self.workloads.values())

    # --- config --------------------------------------------------------------------------
    async def apply(self, path: Path, delete: bool = False) -> dict[str, Any]:
        return await self.admin.apply(path.read_text(), str(path), delete=delete)

    async def syncz(self) -> dict[str, Any]:
        return await self.admin.syncz()

    async def wait_synced(
        self, min_snapshot: int = 0, proxies: int = 0, timeout: float = 20
    ) -> int:
        """Until a snapshot >= min_snapshot is ACKed by every proxy; returns its version."""
        state: dict[str, Any] = {}

        async def synced() -> bool:
            try:
                data = await self.syncz()
            except ControlPlaneUnavailable:
                return False
            state.update(data)
            if data["pending"] or data["snapshot"] < min_snapshot or len(data["proxies"]) < proxies:
                return False
            return all(
                t["status"] == "SYNCED"
                for p in data["proxies"]
                for name, t in p["types"].items()
                if name != "EDS" or t["sent"]
            )

        try:
            await self.until(synced, timeout, "every proxy to ACK the latest config")
        except WeftError as e:
            behind = [
                f"{p['workload']} {name} {t['status']}" + (f" ({t['nack']})" if t["nack"] else "")
                for p in state.get("proxies", [])
                for name, t in p["types"].items()
                if t["status"] != "SYNCED"
            ]
            raise WeftError(
                f"{e}: snapshot {state.get('snapshot')}, pending={state.get('pending')}, "
                f"{len(state.get('proxies', []))} proxies; not synced: {behind or 'none'}"
            ) from None
        return int(state["snapshot"])

    async def ca_rotate(self, step: str, force: bool = False) -> dict[str, Any]:
        return await self.admin.ca_rotate(step, force)

    async def snapshot_version(self) -> int:
        return int((await self.syncz())["snapshot"])

    # --- helpers -------------------------------------------------------------------------
    async def until(self, check: Any, timeout: float, what: str, *watched: Child) -> None:
        """Poll `check` until true; fail at the deadline or as soon as a watched child exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in watched:
                if not child.running:
                    raise WeftError(
                        f"{child.name} exited while waiting for {what}:\n{child.log_tail()}"
                    )
            if await check():
                return
            await asyncio.sleep(0.1)
        raise WeftError(f"timed out after {timeout:.0f}s waiting for {what}")

    async def stop(self) -> None:
        """Workloads first (they deregister and drain), then the control plane."""
        await asyncio.gather(*(c.stop() for c in self.workloads.values()))
        self.workloads.clear()
        if self.control_plane is not None:
            await self.control_plane.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.admin.close()

    def dump_state(self) -> str:
        return json.dumps({k: s.__dict__ for k, s in self.specs.items()}, default=str)
