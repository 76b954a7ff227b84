"""Istio's VM flow locally: WorkloadGroup templates and auto-registered WorkloadEntries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import (
    NETWORKING,
    REVIEWS,
    MeshClient,
    apply_and_sync,
    bookinfo_spec,
    start_bookinfo_reviews,
)
from weft.agent.ports import free_port
from weft.cli.mesh import Child, LocalMesh

pytestmark = pytest.mark.integration

GROUP = """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: reviews-canary}}
spec:
  metadata:
    labels: {{app: reviews, version: v2, track: canary}}
  template:
    serviceAccount: bookinfo-reviews
  probe:
    httpGet: {{path: {path}, port: {port}}}
    periodSeconds: 1
"""


async def start_from_group(mesh: LocalMesh, tmp_path: Path, path: str) -> Child:
    """A reviews instance started with no version of its own: the group gives it one."""
    app_port = free_port()
    group = tmp_path / "group.yaml"
    group.write_text(GROUP.format(path=path, port=app_port))
    await mesh.apply(group)
    spec = bookinfo_spec("reviews", "", app_port=app_port)
    spec.env = {"SERVICE_VERSION": "v2"}
    spec.extra_args += ["--group", "reviews-canary"]
    return await mesh.start_workload(spec)


def workload_entries(mesh: LocalMesh) -> list[dict[str, Any]]:
    """What `weft workloads -o yaml` prints, parsed."""
    out = subprocess.run(
        [sys.executable, "-m", "weft", "workloads", "-o", "yaml"], env=mesh.env,
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [e for e in yaml.safe_load_all(out.stdout) if e]


async def canary_entry(mesh: LocalMesh, healthy: str, child: Child) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def registered() -> bool:
        found[:] = [
            e
            for e in workload_entries(mesh)
            if e["metadata"]["annotations"].get("istio.io/autoRegistrationGroup")
            and e["metadata"]["annotations"]["weft.io/healthy"] == healthy
        ]
        return bool(found)

    await mesh.until(registered, 20, f"the canary to register (healthy={healthy})", child)
    return found[0]


async def test_group_template_gives_labels_identity_and_probe(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    client = await start_bookinfo_reviews(mesh)
    try:
        child = await start_from_group(mesh, tmp_path, "/health")
        entry = await canary_entry(mesh, "true", child)
        assert entry["kind"] == "WorkloadEntry"
        assert entry["metadata"]["annotations"]["istio.io/autoRegistrationGroup"] == (
            "reviews-canary"
        )
        assert entry["spec"]["labels"] == {
            "app": "reviews",
            "version": "v2",
            "track": "canary",
            "security.istio.io/tlsMode": "istio",  # it has a sidecar that speaks mesh mTLS
        }
        assert entry["spec"]["serviceAccount"] == "bookinfo-reviews"
        # Its version label came from the group, so subset v2 routing reaches it.
        await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-jason-v2.yaml")
        counts = await client.versions(REVIEWS, 40, {"end-user": "jason"})
        assert counts == {"v2": 40}
    finally:
        await client.close()


async def test_failing_group_probe_keeps_the_workload_out_of_endpoints(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    specs = [bookinfo_spec("productpage"), bookinfo_spec("reviews", "v1")]
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    child = await start_from_group(mesh, tmp_path, "/no-such-page")
    client = MeshClient(mesh, "productpage-v1")
    try:
        # Registered, but its probe fails: listed unhealthy and never sent traffic.
        await canary_entry(mesh, "false", child)
        await mesh.wait_synced(proxies=3)
        assert await client.versions(REVIEWS, 30) == {"v1": 30}
    finally:
        await client.close()


async def test_unknown_group_is_refused_with_a_clear_error(mesh: LocalMesh) -> None:
    spec = bookinfo_spec("reviews", "v1")
    spec.extra_args += ["--group", "missing"]
    child = await mesh.start_workload(spec)
    message = "WorkloadGroup default/missing does not exist"

    async def logged() -> bool:
        return message in child.log.read_text()

    await mesh.until(logged, 20, "the agent to report the missing group", child)
    assert await mesh.registered() == []
