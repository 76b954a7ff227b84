"""A control plane in the test's own process, serving config the test controls, to one real
Envoy that sends real requests to real backends: for what the serving layer does with
Envoy's answers, whatever generation or validation make of a rule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf import any_pb2

from weft.agent.bootstrap import SidecarIdentity, sidecar_bootstrap
from weft.agent.envoy import EnvoyProcess
from weft.agent.ports import free_port
from weft.api import IstioObject, load_yaml
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot
from weft.xds import types
from weft.xds.connection import Connection
from weft.xds.generate import Resources
from weft.xds.server import AdsServer

REVIEWS = "reviews.default.svc.cluster.local"
URL = "http://reviews:9080/reviews/0"
DEFAULT_CLUSTER = f"outbound|9080||{REVIEWS}"


class BreakableAds(AdsServer):
    """An ADS server whose clusters named in `refuse` are served in a form Envoy refuses (a
    load balancer the cluster type cannot provide), whatever the rules say."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self.refuse: frozenset[str] = frozenset()
        # Per generated config, its broken form: built once, so it is one object while
        # current, as generated configs are.
        self._broken: dict[tuple[int, frozenset[str]], tuple[Resources, Resources]] = {}

    def config_for(self, proxy: Proxy) -> dict[str, Resources]:
        config = super().config_for(proxy)
        clusters = config[types.CLUSTER]
        refused = self.refuse & clusters.items.keys()
        if not refused:
            return config
        key = (id(clusters), frozenset(refused))
        if key not in self._broken:
            items = dict(clusters.items)
            for name in refused:
                cluster = cluster_pb2.Cluster()
                items[name].Unpack(cluster)
                cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
                items[name] = any_pb2.Any()
                items[name].Pack(cluster)
            self._broken[key] = (clusters, Resources.of_packed(types.CLUSTER, items))
        return {**config, types.CLUSTER: self._broken[key][1]}


class ControlPlane:
    """An ADS server on a fixed loopback port, stopped and started as a test says."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self.port = free_port()
        self.version = 0
        self.ads: AdsServer | None = None
        self._server: grpc.aio.Server | None = None

    def snapshot(self, rules: list[IstioObject]) -> Snapshot:
        self.version += 1
        return build_snapshot(
            self.version, rules, self.registry.services(), self.registry.endpoints()
        )

    async def start(
        self, rules: list[IstioObject], make: Callable[[Snapshot], AdsServer] = BreakableAds
    ) -> AdsServer:
        self.ads = make(self.snapshot(rules))
        server = grpc.aio.server()
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self.ads, server)
        if not server.add_insecure_port(f"127.0.0.1:{self.port}"):
            raise OSError(f"cannot listen for xDS on 127.0.0.1:{self.port}")
        await server.start()
        self._server = server
        return self.ads

    def push(self, rules: list[IstioObject]) -> None:
        assert self.ads is not None
        self.ads.push(self.snapshot(rules))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    def connection(self) -> Connection | None:
        if self.ads is None or len(self.ads.connections) != 1:
            return None
        return next(iter(self.ads.connections.values()))

    def statuses(self) -> dict[str, str]:
        """proxy-status of the one proxy, per xDS type, as `weft proxy-status` tells it."""
        conn = self.connection()
        if conn is None:
            return {}
        assert self.ads is not None
        latest = self.ads.config_for(conn.proxy)
        found = {}
        for type_url in types.PUSH_ORDER:
            watch = conn.watches.get(type_url)
            status = "NOT SENT" if watch is None else watch.status
            if (
                status == "SYNCED"
                and watch is not None
                and watch.sent_version != (latest[type_url].version)
            ):
                status = "STALE"
            found[types.short_name(type_url)] = status
        return found

    def synced(self) -> bool:
        return set(self.statuses().values()) == {"SYNCED"}

    def nack(self, type_url: str) -> str | None:
        conn = self.connection()
        watch = None if conn is None else conn.watches.get(type_url)
        return None if watch is None else watch.nack


def rules(*texts: str) -> list[IstioObject]:
    found: list[IstioObject] = []
    for i, text in enumerate(texts):
        found += load_yaml(text, f"<rule {i}>")
    return found


class Backends:
    """One HTTP server per version of reviews, each answering with its version."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self.registry = LocalRegistry()

    async def start(self, versions: Iterable[str]) -> None:
        for version in versions:

            async def answer(_: web.Request, version: str = version) -> web.Response:
                return web.Response(text=version, headers={"x-service-version": version})

            app = web.Application()
            app.router.add_get("/{path:.*}", answer)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.registry.register(
                Workload(
                    name=f"reviews-{version}",
                    namespace="default",
                    service="reviews",
                    address="127.0.0.1",
                    ports=(WorkloadPort(9080, port),),
                    labels=frozen_labels({"app": "reviews", "version": version}),
                )
            )

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


async def start_envoy(work_dir: Path, xds_port: int, delta: bool) -> tuple[EnvoyProcess, int]:
    """A client sidecar of the mesh; (its Envoy, its outbound HTTP-proxy port)."""
    identity = SidecarIdentity(
        workload="client",
        namespace="default",
        service="client",
        labels={"app": "client"},
        proxy_port=free_port(),
    )
    admin = free_port()
    bootstrap = sidecar_bootstrap(identity, "127.0.0.1", xds_port, admin, delta=delta)
    envoy = EnvoyProcess(bootstrap, work_dir / "envoy", admin)
    await envoy.start(live=True)
    assert identity.proxy_port is not None
    return envoy, identity.proxy_port


class Client:
    """Requests to reviews through the sidecar, as an application sends them."""

    def __init__(self, proxy_port: int) -> None:
        self.proxy = f"http://127.0.0.1:{proxy_port}"
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )

    async def get(self) -> tuple[int, str]:
        """(HTTP status or 0 if the request failed, the answering version or why not)."""
        try:
            async with self.session.get(URL, proxy=self.proxy) as resp:
                body = await resp.text()
                return resp.status, resp.headers.get("x-service-version", body[:80])
        except (aiohttp.ClientError, TimeoutError) as e:
            return 0, type(e).__name__

    async def serving(self, versions: set[str], n: int = 20, timeout: float = 10) -> None:
        """Until n requests in a row succeed, answered by `versions` and no other."""
        deadline = time.monotonic() + timeout
        last: list[tuple[int, str]] = []
        while time.monotonic() < deadline:
            last = [await self.get() for _ in range(n)]
            seen = {version for status, version in last if status == 200}
            if all(status == 200 for status, _ in last) and seen == versions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not served by {sorted(versions)} in {timeout} s; last: {last}")

    async def close(self) -> None:
        await self.session.close()


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if not isinstance(found, bool):
            found = await found
        if found:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
