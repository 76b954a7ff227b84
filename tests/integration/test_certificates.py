"""Workload certificates over time, under continuous traffic: rotation, root rotation, and a
CA that is down for longer than a rotation interval. Not one request may fail."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.integration.conftest import MeshClient, bookinfo_spec
from tests.integration.test_resilience import Load
from weft.cli.mesh import LocalMesh
from weft.cli.secrets import envoy_certs

pytestmark = pytest.mark.integration

RATINGS = "http://ratings:9080/ratings/0"


async def start_pair(mesh: LocalMesh, cert_ttl: str | None = None) -> MeshClient:
    specs = [bookinfo_spec("productpage"), bookinfo_spec("ratings")]
    for spec in specs:
        if cert_ttl:
            spec.extra_args += ["--cert-ttl", cert_ttl]
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=2)
    return MeshClient(mesh, "productpage-v1")


def secrets(mesh: LocalMesh, workload: str) -> list[dict[str, Any]]:
    """What `weft proxy-config secret WORKLOAD -o json` prints: Envoy's own view."""
    out = subprocess.run(
        [sys.executable, "-m", "weft", "proxy-config", "secret", workload, "-o", "json"],
        env=mesh.env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    certs: list[dict[str, Any]] = json.loads(out.stdout)
    return certs


def serial(mesh: LocalMesh, workload: str) -> str:
    """The serial of the certificate the workload's Envoy serves, read from Envoy itself (so
    it works while the control plane is down)."""
    spec = mesh.specs[f"{workload}-v1"]
    admin = int(spec.extra_args[spec.extra_args.index("--admin-port") + 1])
    return next(c["serial_number"] for c in envoy_certs(admin) if c["secret"] == "default")


def roots(mesh: LocalMesh, workload: str) -> set[str]:
    return {c["serial_number"] for c in secrets(mesh, workload) if c["secret"] == "ROOTCA"}


async def eventually(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_secret_shows_the_spiffe_identity_and_the_root(mesh: LocalMesh) -> None:
    client = await start_pair(mesh)
    await client.close()
    out = subprocess.run(
        [sys.executable, "-m", "weft", "proxy-config", "secret", "ratings"],
        env=mesh.env, capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert "spiffe://cluster.local/ns/default/sa/ratings" in out
    assert "Cert Chain" in out and "ROOTCA" in out
    leaf = next(c for c in secrets(mesh, "ratings") if c["secret"] == "default")
    # The default lifetime is 24 hours.
    assert leaf["days_until_expiration"] in ("0", "1", 0, 1)


async def test_workload_certificates_rotate_under_traffic(mesh: LocalMesh) -> None:
    client = await start_pair(mesh, cert_ttl="6s")
    try:
        first = serial(mesh, "ratings")
        load = Load(client, RATINGS, limit=100_000, seconds=40)
        with load:
            # Rotation at half of 6 s: three rotations take under 12 s.
            seen = {first}
            await eventually(lambda: seen.add(serial(mesh, "ratings")) or len(seen) >= 3,
                             "ratings' certificate to rotate twice")  # fmt: skip
            await load.stop()
        assert len(load.results) > 100
        assert load.failures() == []
    finally:
        await client.close()


async def test_root_rotation_under_traffic(mesh: LocalMesh) -> None:
    client = await start_pair(mesh)
    try:
        old_roots = roots(mesh, "ratings")
        assert len(old_roots) == 1
        load = Load(client, RATINGS, limit=100_000, seconds=60)
        with load:
            await mesh.ca_rotate("begin")
            # Every sidecar trusts old and new roots before anything is signed by the new one.
            for workload in ("ratings", "productpage"):
                await eventually(lambda w=workload: len(roots(mesh, w)) == 2,
                                 f"{workload} to trust both roots")  # fmt: skip
            await mesh.ca_rotate("activate")
            await eventually(
                lambda: (
                    not mesh_ca_status(mesh)["workloadsOnOldRoots"]
                    and len(mesh_ca_status(mesh)["workloadsOnOldRoots"]) == 0
                ),
                "every workload to hold a certificate from the new root",
            )
            await mesh.ca_rotate("finish")
            for workload in ("ratings", "productpage"):
                await eventually(lambda w=workload: len(roots(mesh, w)) == 1,
                                 f"{workload} to drop the old root")  # fmt: skip
            await load.wait_for(50)
            await load.stop()
        assert roots(mesh, "ratings").isdisjoint(old_roots)
        assert load.failures() == []
    finally:
        await client.close()


def mesh_ca_status(mesh: LocalMesh) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "weft", "ca", "status"], env=mesh.env, capture_output=True,
        text=True, timeout=30, check=True,
    )  # fmt: skip
    status: dict[str, Any] = json.loads(out.stdout)
    return status


async def test_ca_down_longer_than_a_rotation_interval(mesh: LocalMesh) -> None:
    ttl = 16.0
    client = await start_pair(mesh, cert_ttl=f"{ttl:.0f}s")
    try:
        first = serial(mesh, "ratings")
        load = Load(client, RATINGS, limit=100_000, seconds=60)
        with load:
            await mesh.stop_control_plane(kill=True)
            down = time.monotonic()
            # Past the renewal time (half of 16 s), short of expiry: the old cert serves on.
            while time.monotonic() - down < ttl * 0.6:
                await load.wait_for(10)
            assert serial(mesh, "ratings") == first
            await mesh.start_control_plane()
            # Back: the agent's retries get a new certificate before the old one expires.
            await eventually(lambda: serial(mesh, "ratings") != first, "a renewed certificate",
                             timeout=ttl)  # fmt: skip
            await load.wait_for(20)
            await load.stop()
        assert load.failures() == []
    finally:
        await client.close()
