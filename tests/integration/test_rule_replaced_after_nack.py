"""The sequence a user met, through `weft run` sidecars: subsets and a route using them, then
the rule replaced by one Envoy may refuse (`loadBalancer.simple: PASSTHROUGH`, no subsets),
then the good rule again. Whatever becomes of that rule (refused when applied, served,
or NACKed by Envoy), once the good rule is back every request succeeds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.conftest import NETWORKING, REVIEWS, MeshClient, apply_and_sync
from weft.cli.mesh import LocalMesh
from weft.errors import WeftError

pytestmark = pytest.mark.integration

PASSTHROUGH = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
"""


async def settled(mesh: LocalMesh, timeout: float = 15) -> None:
    """Until every proxy has ACKed the latest config, or NACKed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await mesh.syncz()
        if not state["pending"] and all(
            t["status"] == "SYNCED" or t["nack"]
            for p in state["proxies"]
            for name, t in p["types"].items()
            if name != "EDS" or t["sent"]
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("proxies neither took nor refused the rule")


async def test_requests_succeed_once_the_good_rule_is_back(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-80-20.yaml")
    assert set(await bookinfo.versions(REVIEWS, 20)) <= {"v1", "v3"}
    bad = tmp_path / "reviews-passthrough.yaml"
    bad.write_text(PASSTHROUGH)
    before = await mesh.snapshot_version()
    try:
        await mesh.apply(bad)
    except WeftError as refused:  # refused at validation: nothing reaches Envoy
        assert "PASSTHROUGH" in str(refused) or "loadBalancer" in str(refused), refused
    else:
        await mesh.until(lambda: _newer(mesh, before), 10, "the rule to be served")
        await settled(mesh)
    # The good rule again (unchanged, so no new snapshot, when the bad one was refused).
    current = await mesh.snapshot_version()
    await mesh.apply(NETWORKING / "destination-rule-all.yaml")
    await mesh.wait_synced(min_snapshot=current, proxies=len(mesh.workloads))
    counts = await bookinfo.versions(REVIEWS, 40)
    assert set(counts) <= {"v1", "v3"}, counts  # a failure would count as "HTTP 503"
    # ... and it goes on taking changes.
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    assert await bookinfo.versions(REVIEWS, 20) == {"v1": 20}


async def _newer(mesh: LocalMesh, version: int) -> bool:
    return await mesh.snapshot_version() > version
