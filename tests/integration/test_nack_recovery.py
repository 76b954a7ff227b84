"""A NACK never leaves a proxy broken: real Envoy, real requests, a control plane in this
process whose config the test breaks in one step (a cluster Envoy refuses, while the rule that
made it also removes subset clusters), over both ADS protocols and across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Request

from tests.integration.inprocess_mesh import (
    DEFAULT_CLUSTER,
    Backends,
    BreakableAds,
    Client,
    ControlPlane,
    rules,
    start_envoy,
    until,
)
from weft.agent.envoy import EnvoyProcess
from weft.snapshot.snapshot import Snapshot
from weft.xds import types
from weft.xds.connection import Connection, WatchState
from weft.xds.delta import DeltaAds

pytestmark = pytest.mark.integration

SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
# The same host without subsets: with the default cluster refused, one push that Envoy NACKs
# yet partly applies (it removes the subset clusters).
NO_SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"""
SPLIT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
"""
ONLY_V2 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
"""
GOOD = rules(SUBSETS, SPLIT)
BAD = rules(NO_SUBSETS, SPLIT)


@dataclass
class Mesh:
    control_plane: ControlPlane
    envoy: EnvoyProcess
    client: Client


async def start_mesh(tmp_path: Path, delta: bool) -> AsyncIterator[Mesh]:
    backends = Backends()
    await backends.start(["v1", "v2"])
    control_plane = ControlPlane(backends.registry)
    envoy = None
    client = None
    try:
        await control_plane.start(GOOD)
        envoy, proxy_port = await start_envoy(tmp_path, control_plane.port, delta)
        client = Client(proxy_port)
        yield Mesh(control_plane, envoy, client)
    finally:
        if client is not None:
            await client.close()
        if envoy is not None:
            await envoy.stop()
        await control_plane.stop()
        await backends.stop()


@pytest_asyncio.fixture(params=[True, False], ids=["delta", "sotw"])
async def mesh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mesh]:
    async for found in start_mesh(tmp_path, request.param):
        yield found


def breakable(mesh: Mesh) -> BreakableAds:
    assert isinstance(mesh.control_plane.ads, BreakableAds)
    return mesh.control_plane.ads


async def refuse_default_cluster(mesh: Mesh) -> str:
    """Push the rule without subsets with the default cluster refused; Envoy's NACK."""
    cp = mesh.control_plane
    breakable(mesh).refuse = frozenset({DEFAULT_CLUSTER})
    cp.push(BAD)
    await until(lambda: cp.nack(types.CLUSTER) is not None, "Envoy's NACK of the clusters")
    nack = cp.nack(types.CLUSTER)
    assert nack is not None and DEFAULT_CLUSTER in nack, nack
    return nack


async def test_after_a_nack_the_good_rule_serves_again(mesh: Mesh) -> None:
    cp, client = mesh.control_plane, mesh.client
    await client.serving({"v1", "v2"})
    await until(cp.synced, "every type SYNCED")

    await refuse_default_cluster(mesh)
    # Envoy has applied what it accepted of that push: never reported as in sync.
    await until(lambda: cp.statuses()["CDS"] == "STALE", "CDS reported STALE")
    assert cp.statuses()["CDS"] == "STALE"

    breakable(mesh).refuse = frozenset()
    cp.push(GOOD)
    await client.serving({"v1", "v2"})
    await until(cp.synced, "every type SYNCED again")
    # ... and it goes on taking changes.
    cp.push(rules(SUBSETS, ONLY_V2))
    await client.serving({"v2"})


async def test_after_a_nack_a_restarted_control_plane_serves_the_good_rule(mesh: Mesh) -> None:
    cp, client = mesh.control_plane, mesh.client
    await client.serving({"v1", "v2"})
    await refuse_default_cluster(mesh)
    # The good rule comes back while the control plane is down.
    await cp.stop()
    await cp.start(GOOD)
    await client.serving({"v1", "v2"}, timeout=15)
    await until(cp.synced, "every type SYNCED after the restart")


class NoResendDelta(DeltaAds):
    """Delta as served before Envoy's partial application of a NACKed response was known:
    after a NACK nothing is sent again, so Envoy's record keeps what it removed."""

    def _answered(self, conn: Connection, watch: WatchState, request: Request) -> None:
        if request.HasField("error_detail") and request.response_nonce == watch.sent_nonce:
            watch.delta.in_flight = None
            watch.nack = request.error_detail.message
            return
        super()._answered(conn, watch, request)


class OlderServer(BreakableAds):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        shared = self._delta._versions
        self._delta = NoResendDelta(self.config_for, self._nonce, self.metrics, shared, self._wake)


async def test_a_restarted_control_plane_sends_clusters_envoy_declares_but_lacks(
    tmp_path: Path,
) -> None:
    """An Envoy left by a NACK declaring clusters it removed (by a control plane that did not
    send the removals again, or that stopped first) gets them from the next one."""
    async for mesh in start_mesh(tmp_path, delta=True):
        cp, client = mesh.control_plane, mesh.client
        await cp.stop()
        await cp.start(GOOD, make=OlderServer)
        await until(cp.synced, "the Envoy reconnected")
        await client.serving({"v1", "v2"})
        await refuse_default_cluster(mesh)
        await cp.stop()
        await cp.start(GOOD)
        await client.serving({"v1", "v2"}, timeout=15)
        await until(cp.synced, "every type SYNCED after the restart")
