"""Delta (incremental) xDS against real Envoy: the same config as state of the world, and a
`weft run` mesh that routes, survives a rejected rule, and resyncs a restart cheaply."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.integration.conftest import (
    NETWORKING,
    REVIEWS,
    MeshClient,
    apply_and_sync,
    bad_regex_rule,
)
from tests.integration.test_resilience import Load, wait_for_nack
from weft.agent.bootstrap import SidecarIdentity, sidecar_bootstrap
from weft.agent.envoy import EnvoyProcess
from weft.agent.ports import free_port
from weft.cli.mesh import LocalMesh
from weft.snapshot.proxy import InboundPort

pytestmark = pytest.mark.integration

DUMP_TYPES = "type.googleapis.com/envoy.admin.v3."
APP_PORT = 30080  # the same for both: only the inbound cluster names it, Envoy never binds it


@dataclass
class Sidecar:
    """An Envoy started directly, as one more productpage-like proxy of the mesh."""

    envoy: EnvoyProcess
    identity: SidecarIdentity

    @property
    def own_ports(self) -> dict[int, str]:
        """The ports only this Envoy has, each with the placeholder it is compared under."""
        assert self.identity.proxy_port is not None
        ports = {self.identity.proxy_port: "PROXY_PORT"}
        ports.update(
            {p.inbound_port: f"INBOUND_PORT_{p.service_port}" for p in self.identity.inbound}
        )
        return ports


async def start_sidecar(mesh: LocalMesh, work_dir: Path, name: str, delta: bool) -> Sidecar:
    identity = SidecarIdentity(
        workload=name,
        namespace="default",
        service="productpage",
        labels={"app": "productpage", "version": "v1"},
        service_account="productpage",
        proxy_port=free_port(),
        inbound=(InboundPort(service_port=9080, inbound_port=free_port(), app_port=APP_PORT),),
    )
    admin = free_port()
    bootstrap = sidecar_bootstrap(identity, "127.0.0.1", mesh.xds_port, admin, delta=delta)
    envoy = EnvoyProcess(bootstrap, work_dir / name, admin)
    await envoy.start()
    return Sidecar(envoy, identity)


@pytest_asyncio.fixture
async def sidecars(mesh: LocalMesh, tmp_path: Path) -> AsyncIterator[tuple[Sidecar, Sidecar]]:
    """Two Envoys for the same workload shape: one speaks delta, the other state of the world."""
    started: list[Sidecar] = []
    try:
        for name, delta in (("productpage-delta", True), ("productpage-sotw", False)):
            started.append(await start_sidecar(mesh, tmp_path, name, delta))
        yield started[0], started[1]
    finally:
        for sidecar in started:
            await sidecar.envoy.stop()


def _dumped(dump: dict[str, Any], kind: str) -> dict[str, Any]:
    for config in dump["configs"]:
        if config["@type"] == DUMP_TYPES + kind:
            found: dict[str, Any] = config
            return found
    return {}


def _portless(value: Any, ports: dict[int, str]) -> Any:
    """`value` with this Envoy's own ports (in names and addresses) replaced by placeholders."""
    if isinstance(value, dict):
        return {k: _portless(v, ports) for k, v in value.items()}
    if isinstance(value, list):
        return [_portless(v, ports) for v in value]
    if isinstance(value, int) and value in ports:
        return ports[value]
    if isinstance(value, str):
        for port, placeholder in ports.items():
            value = re.sub(rf"(?<![0-9]){port}(?![0-9])", placeholder, value)
    return value


async def envoy_config(sidecar: Sidecar) -> dict[str, dict[str, Any]]:
    """What Envoy runs, by kind and name, without versions and timestamps."""
    dump = await sidecar.envoy.config_dump(include_eds=True)
    clusters = _dumped(dump, "ClustersConfigDump").get("dynamic_active_clusters", [])
    listeners = _dumped(dump, "ListenersConfigDump").get("dynamic_listeners", [])
    routes = _dumped(dump, "RoutesConfigDump").get("dynamic_route_configs", [])
    endpoints = _dumped(dump, "EndpointsConfigDump").get("dynamic_endpoint_configs", [])
    active = [entry["active_state"]["listener"] for entry in listeners if "active_state" in entry]
    return {
        "clusters": {c["cluster"]["name"]: c["cluster"] for c in clusters},
        "listeners": {
            _portless(li["name"], sidecar.own_ports): _portless(li, sidecar.own_ports)
            for li in active
        },
        "warming listeners": {e["name"]: True for e in listeners if "warming_state" in e},
        "routes": {r["route_config"]["name"]: r["route_config"] for r in routes},
        "endpoints": {
            e["endpoint_config"]["cluster_name"]: e["endpoint_config"] for e in endpoints
        },
    }


def differences(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[str]:
    found = []
    for kind in a.keys() | b.keys():
        left, right = a.get(kind, {}), b.get(kind, {})
        for name in sorted(left.keys() | right.keys()):
            if left.get(name) != right.get(name):
                found.append(f"{kind} {name}: delta={left.get(name)} sotw={right.get(name)}")
    return found


async def assert_same_config(delta: Sidecar, sotw: Sidecar, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        a, b = await envoy_config(delta), await envoy_config(sotw)
        diff = differences(a, b)
        if not diff:
            assert a["clusters"] and a["listeners"] and a["routes"] and a["endpoints"]
            return
        assert time.monotonic() < deadline, "\n".join(diff)[:4000]
        await asyncio.sleep(0.2)


async def protocols(mesh: LocalMesh) -> dict[str, str]:
    return {p["workload"]: p["protocol"] for p in (await mesh.syncz())["proxies"]}


async def test_delta_and_state_of_the_world_give_envoy_the_same_config(
    mesh: LocalMesh, bookinfo: MeshClient, sidecars: tuple[Sidecar, Sidecar]
) -> None:
    delta, sotw = sidecars
    proxies = len(mesh.workloads) + 2
    await mesh.wait_synced(proxies=proxies)
    found = await protocols(mesh)
    assert (found["productpage-delta"], found["productpage-sotw"]) == ("delta", "sotw")
    await assert_same_config(delta, sotw)
    # Each rule changes the config incrementally: the result must still be the same.
    for rule in (
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-jason-v2.yaml",
    ):
        before = await mesh.snapshot_version()
        await mesh.apply(NETWORKING / rule)
        await mesh.wait_synced(min_snapshot=before + 1, proxies=proxies)
        await assert_same_config(delta, sotw)
    # A service leaving removes its clusters and endpoints from both.
    before = await mesh.snapshot_version()
    await mesh.stop_workload("ratings-v1")
    await mesh.wait_synced(min_snapshot=before + 1, proxies=proxies - 1)
    await assert_same_config(delta, sotw)
    assert not [n for n in (await envoy_config(delta))["clusters"] if "ratings" in n]


async def test_weft_run_routes_over_delta_and_keeps_traffic_through_a_rejected_rule(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    assert set((await protocols(mesh)).values()) == {"delta"}
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-80-20.yaml")
    n = 300
    counts = await bookinfo.versions(REVIEWS, n)
    assert set(counts) <= {"v1", "v3"}, counts
    assert abs(100 * counts.get("v1", 0) / n - 80) < 8, counts  # 3.5 standard deviations
    bad = bad_regex_rule(tmp_path)
    load = Load(bookinfo)
    with load:
        await load.wait_for(20)
        await mesh.apply(bad)
        nack = await wait_for_nack(mesh, "productpage")
        applied = time.monotonic()
        await load.wait_for(60)
        await load.stop()
    assert "{1001}" in nack, nack
    # Envoy kept the 80/20 routes: no v2, no failed request.
    assert load.failures() == []
    assert load.versions_since(applied) <= {"v1", "v3"}
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    assert await bookinfo.versions(REVIEWS, 20) == {"v1": 20}


async def test_control_plane_restart_resends_nothing_envoy_already_has(
    mesh: LocalMesh, bookinfo: MeshClient
) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    load = Load(bookinfo)
    with load:
        await load.wait_for(20)
        await mesh.stop_control_plane(kill=True)
        await load.wait_for(30)
        await mesh.start_control_plane()
        await mesh.wait_synced(proxies=len(mesh.workloads))
        await load.wait_for(20)
        await load.stop()
    assert load.failures() == []
    assert load.versions_since(0) == {"v1"}
    proxies = (await mesh.syncz())["proxies"]
    assert len(proxies) == len(mesh.workloads)
    for proxy in proxies:
        assert proxy["protocol"] == "delta"
        sent = {name: t["resources_sent"] for name, t in proxy["types"].items()}
        # Every type was answered (SYNCED), with not one resource in it.
        assert sent == {"CDS": 0, "EDS": 0, "LDS": 0, "RDS": 0}, (proxy["workload"], sent)
    # The new control plane drives the same Envoys: a change is sent, and only the change.
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-80-20.yaml")
    assert set(await bookinfo.versions(REVIEWS, 20)) <= {"v1", "v3"}
    for proxy in (await mesh.syncz())["proxies"]:
        sent = {name: t["resources_sent"] for name, t in proxy["types"].items()}
        assert sent == {"CDS": 0, "EDS": 0, "LDS": 0, "RDS": 1}, (proxy["workload"], sent)
