"""What must never break traffic: rule changes, rejected config, control-plane restarts,
workloads leaving, and bad YAML."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    NETWORKING,
    REVIEWS,
    SAMPLES,
    MeshClient,
    apply_and_sync,
    bad_regex_rule,
    bookinfo_spec,
)
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration


class Load:
    """Requests in a loop until stopped (bounded by count and time); every result kept."""

    def __init__(self, client: MeshClient, url: str = REVIEWS, limit: int = 5000,
                 seconds: float = 60.0) -> None:  # fmt: skip
        self.client, self.url, self.limit, self.seconds = client, url, limit, seconds
        self.results: list[tuple[float, int, str]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and len(self.results) < self.limit:
            if time.monotonic() > deadline:
                break
            # Kept by when it was sent: one sent before a change may be answered after it.
            sent = time.monotonic()
            try:
                status, version, _ = await self.client.get(self.url)
            except Exception as e:  # a reset connection is a failed request too
                status, version = 0, type(e).__name__
            self.results.append((sent, status, version))

    def __enter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def failures(self) -> list[tuple[float, int, str]]:
        return [r for r in self.results if r[1] != 200]

    def versions_since(self, t: float) -> set[str]:
        """Versions that answered requests sent at or after `t`."""
        return {v for ts, s, v in self.results if ts >= t and s == 200}

    async def wait_for(self, n: int, timeout: float = 20.0) -> None:
        """Until n more requests have completed."""
        target = len(self.results) + n
        deadline = time.monotonic() + timeout
        while len(self.results) < target:
            assert time.monotonic() < deadline, "traffic stalled"
            await asyncio.sleep(0.02)


async def test_rules_change_under_traffic_without_a_failed_request(
    mesh: LocalMesh, bookinfo: MeshClient
) -> None:
    envoy_uptime = await envoy_uptime_of(mesh, "productpage-v1")
    load = Load(bookinfo)
    with load:
        for rule, expected in (
            ("virtual-service-all-v1.yaml", {"v1"}),
            ("virtual-service-reviews-80-20.yaml", {"v1", "v3"}),
            ("virtual-service-reviews-jason-v2.yaml", {"v1"}),
        ):
            await load.wait_for(20)
            await apply_and_sync(mesh, NETWORKING / rule)
            applied = time.monotonic()
            await load.wait_for(60)
            seen = load.versions_since(applied)
            assert seen <= expected and seen & expected, (rule, seen)
        await load.stop()
    assert len(load.results) > 200
    assert load.failures() == []
    # The same Envoy took every change: it was never restarted.
    assert await envoy_uptime_of(mesh, "productpage-v1") >= envoy_uptime


async def envoy_uptime_of(mesh: LocalMesh, key: str) -> int:
    spec = mesh.specs[key]
    admin = int(spec.extra_args[spec.extra_args.index("--admin-port") + 1])
    async with mesh.session.get(f"http://127.0.0.1:{admin}/server_info") as resp:
        info = await resp.json()
    return int(info["uptime_all_epochs"].rstrip("s"))


async def test_rejected_config_leaves_traffic_on_the_last_good_config(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    bad = bad_regex_rule(tmp_path)
    await mesh.apply(bad)
    nack = await wait_for_nack(mesh, "productpage")
    assert "x{1001}" in nack or "repetition" in nack or "regex" in nack.lower(), nack
    # Envoy kept the routes it had: everything still goes to v1, nothing fails.
    assert await bookinfo.versions(REVIEWS, 30) == {"v1": 30}
    # Fixing the rule clears the NACK and takes effect.
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-80-20.yaml")
    assert set(await bookinfo.versions(REVIEWS, 40)) <= {"v1", "v3"}
    status = subprocess.run(
        [sys.executable, "-m", "weft", "proxy-status"], env=mesh.env, capture_output=True,
        text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "NACK" not in status.stdout
    assert status.stdout.count("SYNCED") >= 4 * len(mesh.workloads)


async def wait_for_nack(mesh: LocalMesh, workload_prefix: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proxy in (await mesh.syncz())["proxies"]:
            if proxy["workload"].startswith(workload_prefix) and proxy["types"]["RDS"]["nack"]:
                return str(proxy["types"]["RDS"]["nack"])
        await asyncio.sleep(0.1)
    raise AssertionError("no proxy reported a NACK")


async def test_control_plane_restart_keeps_traffic_and_proxies_resync(
    mesh: LocalMesh, bookinfo: MeshClient
) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    load = Load(bookinfo)
    with load:
        await load.wait_for(20)
        await mesh.stop_control_plane(kill=True)
        down = time.monotonic()
        await load.wait_for(100)  # all of these while no control plane runs
        assert mesh.control_plane is not None and not mesh.control_plane.running
        await mesh.start_control_plane()
        await mesh.wait_synced(proxies=len(mesh.workloads))
        await load.wait_for(20)
        await load.stop()
    assert load.failures() == []
    assert load.versions_since(down) == {"v1"}
    # The restarted control plane drives the same Envoys: a new rule takes effect.
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    assert await bookinfo.versions(REVIEWS, 10, {"end-user": "jason"}) == {"v2": 10}


async def test_workload_that_exits_leaves_the_endpoints(mesh: LocalMesh, tmp_path: Path) -> None:
    pidfile = tmp_path / "reviews-v3.pid"
    v3 = bookinfo_spec("reviews", "v3")
    # Record the app's PID, then become the app (exec keeps the PID).
    v3.command = [
        sys.executable, "-c",
        "import os, sys; open(sys.argv[1], 'w').write(str(os.getpid())); "
        "os.execv(sys.executable, [sys.executable, sys.argv[2], 'reviews'])",
        str(pidfile), str(SAMPLES / "bookinfo" / "app.py"),
    ]  # fmt: skip
    specs = [bookinfo_spec("productpage"), bookinfo_spec("reviews", "v1"), v3]
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=3)
    client = MeshClient(mesh, "productpage-v1")
    try:
        assert set(await client.versions(REVIEWS, 30)) == {"v1", "v3"}
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        # The agent sees its app die, deregisters, and exits with the app's status.
        child = mesh.workloads["reviews-v3"]
        assert await asyncio.wait_for(child.proc.wait(), 20) == 128 + signal.SIGKILL
        await mesh.wait_synced(proxies=2)
        endpoints = await reviews_endpoints(mesh)
        assert endpoints == [mesh.specs["reviews-v1"].inbound_port]
        assert await client.versions(REVIEWS, 20) == {"v1": 20}
    finally:
        await client.close()


async def reviews_endpoints(mesh: LocalMesh) -> list[int]:
    async with mesh.session.get(
        f"{mesh.admin_url}/debug/config_dump", params={"proxy": "productpage"}
    ) as resp:
        dump = await resp.json()
    for cla in dump["EDS"]["resources"]:
        if cla["clusterName"] == "outbound|9080||reviews.default.svc.cluster.local":
            return sorted(
                ep["endpoint"]["address"]["socketAddress"]["portValue"]
                for locality in cla.get("endpoints", [])
                for ep in locality["lbEndpoints"]
            )
    raise AssertionError("no EDS for reviews")


async def test_stopping_a_workload_drains_it_without_failed_requests(
    mesh: LocalMesh, bookinfo: MeshClient
) -> None:
    load = Load(bookinfo)
    with load:
        await load.wait_for(30)
        assert await mesh.stop_workload("reviews-v2") == 0
        stopped = time.monotonic()
        await load.wait_for(60)
        await load.stop()
    assert load.failures() == []
    assert "v2" not in load.versions_since(stopped)


async def test_bad_yaml_is_refused_with_a_clear_error(mesh: LocalMesh, bookinfo: MeshClient,
                                                      tmp_path: Path) -> None:  # fmt: skip
    bad = tmp_path / "reviews-rules.yaml"
    bad.write_text(
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v3}, weight: 20}
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "weft", "apply", "-f", str(bad)], env=mesh.env,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert "VirtualService default/reviews" in result.stderr
    assert "spec.http[0].route" in result.stderr
    assert "100" in result.stderr
    # Nothing from that file was applied, not even its valid document.
    async with mesh.session.get(f"{mesh.admin_url}/v1/config") as resp:
        config = await resp.json()
    assert {"kind": "VirtualService", "namespace": "default", "name": "ratings"} not in config[
        "objects"
    ]

    # The same file dropped into the watched directory: reported, and traffic unharmed.
    (mesh.config_dir / "reviews-rules.yaml").write_text(bad.read_text())
    deadline = time.monotonic() + 10
    problems: list[str] = []
    while not problems and time.monotonic() < deadline:
        async with mesh.session.get(f"{mesh.admin_url}/v1/config") as resp:
            problems = (await resp.json())["problems"]
        await asyncio.sleep(0.1)
    assert any("reviews-rules.yaml" in p and "spec.http[0].route" in p for p in problems)
    assert set(await bookinfo.versions(REVIEWS, 30)) == {"v1", "v2", "v3"}
