"""The control plane never stalls, and a stall never costs a workload its registration:
a 10,000-object apply leaves the admin API answering, and heartbeats that waited in the socket
while the control plane was stopped are read before any expiry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration

TTL = 2.0  # seconds; a stall longer than this used to expire every workload
WORKLOAD = {
    "name": "reviews-v1",
    "namespace": "default",
    "service": "reviews",
    "address": "127.0.0.1",
    "ports": [{"servicePort": 9080, "targetPort": 20001}],
}


@pytest_asyncio.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[LocalMesh]:
    m = LocalMesh(tmp_path)
    await m.start_control_plane(extra_args=["--registry-ttl", str(TTL)])
    try:
        yield m
    finally:
        await m.stop()


class Agent:
    """Registers one workload and reports every 0.5 s, each report on a new connection (as an
    agent's does once its last one timed out): its answers say whether it was ever forgotten."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.answers: list[int] = []
        self._session = aiohttp.ClientSession(
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Agent:
        async with self._session.post(f"{self.admin_url}/v1/workloads", json=WORKLOAD) as resp:
            assert resp.status == 200, await resp.text()
        self._task = asyncio.create_task(self._report())
        return self

    async def _report(self) -> None:
        url = f"{self.admin_url}/v1/workloads/default/reviews-v1/health"
        for _ in range(400):  # bounded: 200 s at most
            async with self._session.put(url, json={"healthy": True}) as resp:
                self.answers.append(resp.status)
            await asyncio.sleep(0.5)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._session.close()

    async def reported(self, n: int, timeout: float = 30.0) -> None:
        """Until `n` more reports were answered."""
        target = len(self.answers) + n
        deadline = time.monotonic() + timeout
        while len(self.answers) < target:
            assert time.monotonic() < deadline, f"only {len(self.answers)} reports answered"
            await asyncio.sleep(0.05)


async def registered(mesh: LocalMesh) -> list[str]:
    return [w.name for w in await mesh.registered()]


async def test_heartbeats_that_waited_out_a_stall_keep_their_workload(mesh: LocalMesh) -> None:
    assert mesh.control_plane is not None
    pid = mesh.control_plane.proc.pid
    async with Agent(mesh.admin_url) as agent:
        await agent.reported(3)
        os.kill(pid, signal.SIGSTOP)  # the whole process stalls, its event loop with it
        try:
            await asyncio.sleep(2.5 * TTL)  # reports keep being sent; they wait in the socket
        finally:
            os.kill(pid, signal.SIGCONT)
        await agent.reported(4)
        # 404 would mean the workload had been expired (clients got 502 until re-registered).
        assert set(agent.answers) == {200}
        assert await registered(mesh) == ["reviews-v1"]


def destination_rules(n: int) -> str:
    return "---\n".join(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: rule-{i:05d}, namespace: default}}\n"
        f"spec: {{host: svc-{i:05d}, trafficPolicy: {{tls: {{mode: DISABLE}}}}}}\n"
        for i in range(n)
    )


class AdminProbe:
    """Small requests to the admin API, one after another (bounded), and the longest wait."""

    def __init__(self, admin_url: str) -> None:
        self.url = f"{admin_url}/v1/workloads"
        self.longest = 0.0
        self.count = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            for _ in range(100_000):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                async with session.get(self.url) as resp:
                    assert resp.status == 200
                self.longest = max(self.longest, time.monotonic() - started)
                self.count += 1
                await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


async def apply(mesh: LocalMesh, text: str, delete: bool = False) -> dict[str, Any]:
    query = "?source=rules.yaml" + ("&delete=true" if delete else "")
    async with (
        aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=120)) as s,
        s.post(f"{mesh.admin_url}/v1/config{query}", data=text.encode()) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body


async def test_a_10000_object_apply_leaves_the_admin_api_answering(mesh: LocalMesh) -> None:
    text = destination_rules(10_000)
    async with Agent(mesh.admin_url) as agent:
        await agent.reported(2)
        probe = AdminProbe(mesh.admin_url)
        probing = asyncio.create_task(probe.run())
        try:
            started = time.monotonic()
            answer = await apply(mesh, text)
            took = time.monotonic() - started
        finally:
            probe.stop()
            await probing
        assert answer["count"] == 10_000
        assert {r["result"] for r in answer["results"]} == {"configured"}
        # The loop kept serving: every probe waited far less than the apply took (31 s once).
        assert probe.count > 20
        assert probe.longest < 1.0, (probe.longest, took)
        await agent.reported(2)
        assert set(agent.answers) == {200}
        assert await registered(mesh) == ["reviews-v1"]
    async with mesh.session.get(f"{mesh.admin_url}/v1/config") as resp:
        assert len((await resp.json())["objects"]) == 10_000
