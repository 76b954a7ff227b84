"""The control plane process: config ingestion -> snapshot -> xDS, plus the admin API."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from aiohttp import web
from envoy.service.discovery.v3 import ads_pb2_grpc

from weft.api import MeshConfig
from weft.config.directory import DirectoryStore
from weft.config.store import ConfigStore
from weft.controlplane.address import DEFAULT_ADMIN_PORT, DEFAULT_CA_PORT, DEFAULT_XDS_PORT
from weft.controlplane.admin import admin_app
from weft.controlplane.backend import ControlPlaneBackend
from weft.controlplane.citadel import Citadel
from weft.controlplane.debounce import Debouncer
from weft.controlplane.jwks import JwksFetcher
from weft.registry.liveness import LivenessClock
from weft.registry.local import LocalRegistry
from weft.snapshot.build import build_snapshot
from weft.snapshot.snapshot import Snapshot
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds.authn import jwks_uris
from weft.xds.server import AdsServer

log = logging.getLogger("weft.controlplane")


@dataclass(frozen=True)
class ControlPlaneOptions:
    config_dir: Path
    state_dir: Path
    xds_address: str = "127.0.0.1"
    xds_port: int = DEFAULT_XDS_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    registry_ttl: float = 15.0
    ca_port: int = DEFAULT_CA_PORT
    ca_dir: Path | None = None  # a plugged-in CA in Istio's file layout
    max_cert_ttl: float | None = None
    mesh: MeshConfig = field(default_factory=MeshConfig)


EXPIRE_INTERVAL = 1.0  # seconds between expiry checks of the registry


def _tune_gc() -> None:
    """The control plane holds a large, long-lived heap (config, snapshots, cached pieces) and
    allocates many short-lived objects per push, nearly all freed by reference counting.
    CPython's default thresholds then run full collections over the whole heap during pushes
    (tens of ms each at 1000 services). Objects loaded at start are moved out of the collector's
    sight, and young collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class ControlPlane:
    """Owns the store, the registry, the snapshot and the servers; `run()` until cancelled."""

    def __init__(self, options: ControlPlaneOptions, store: ConfigStore | None = None) -> None:
        self.options = options
        self.metrics = ControlPlaneMetrics()
        self.store: ConfigStore = store or DirectoryStore(options.config_dir)
        # Agents are judged by time the loop was listening: a stall never expires them.
        self._liveness = LivenessClock(EXPIRE_INTERVAL)
        # Every registry change is saved at once (about 1 ms at 1000 workloads): a control
        # plane killed and restarted serves every endpoint it knew.
        self.registry = LocalRegistry(
            state_file=options.state_dir / "workloads.json",
            ttl=options.registry_ttl,
            clock=self._liveness.now,
        )
        self.citadel = Citadel(
            options.state_dir, options.mesh.trust_domain, options.ca_dir, options.max_cert_ttl
        )
        self.jwks = JwksFetcher(self.changed)
        self._version = 0
        self.ads = AdsServer(Snapshot(), self.metrics)
        self._debouncer = Debouncer(self.rebuild_off_loop)
        self.ready = asyncio.Event()
        self._failed = False  # the last build failed: the next starts from scratch

    def rebuild(self) -> None:
        """Make a new snapshot from the current config and registry and push it.

        Only the parts of the snapshot whose sources changed are made again: when only the
        registry's endpoints changed, only the endpoints (the endpoint fast path; see
        `weft.snapshot.dependencies`). If making it fails (a bug), proxies keep the current
        one and the control plane goes on.
        """
        try:
            self._serve(self._snapshot_maker()())
        except Exception:
            self._build_failed()

    async def rebuild_off_loop(self) -> None:
        """rebuild(), building the snapshot in a worker thread while the loop goes on serving."""
        replaced = [self.ads.snapshot]  # freed in a worker too: a big one takes a while
        try:
            self._serve(await asyncio.to_thread(self._snapshot_maker()))
        except Exception:
            self._build_failed()
        await asyncio.to_thread(replaced.clear)

    def _snapshot_maker(self) -> Callable[[], Snapshot]:
        """The next snapshot's build, its inputs read now (on the loop); pure, so it may run
        in another thread."""
        self._version += 1
        return partial(
            build_snapshot,
            self._version,
            self.store.objects(),
            self.registry.services(),
            self.registry.endpoints(),
            mesh=self.options.mesh,
            jwks=self.jwks.documents(),
            previous=None if self._failed else self.ads.snapshot,
        )

    def _build_failed(self) -> None:
        self._failed = True
        log.exception("not serving a new snapshot: building it failed; proxies keep theirs")

    def _serve(self, snap: Snapshot) -> None:
        self._failed = False
        self.jwks.watch(jwks_uris(snap.request_authentications))
        self.citadel.forget_except({(w.namespace, w.name) for w in self.registry.workloads()})
        self.metrics.config_errors.set(len(self.store.problems()))
        self.ads.push(snap)

    @property
    def rebuild_pending(self) -> bool:
        return self._debouncer.pending

    def changed(self) -> None:
        """Config (or anything but the registry) changed: the next snapshot is built."""
        self._debouncer.trigger()

    def registry_changed(self) -> None:
        self._debouncer.trigger()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            # The tick that ends a stall expires nothing: heartbeats that waited in the
            # socket meanwhile are read first.
            if self._liveness.tick():
                self.registry.expire()

    async def run(self) -> None:
        opts = self.options
        await self.store.start()
        self.store.subscribe(self.changed)
        self.registry.subscribe(self.registry_changed)
        await self.rebuild_off_loop()
        _tune_gc()
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        )
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self.ads, server)
        bound = server.add_insecure_port(f"{opts.xds_address}:{opts.xds_port}")
        if bound == 0:
            raise OSError(f"cannot listen for xDS on {opts.xds_address}:{opts.xds_port}")
        backend = ControlPlaneBackend(
            self.store, self.registry, self.citadel, self.ads, self.metrics, self.ready,
            lambda: self.rebuild_pending,
        )  # fmt: skip
        runner = web.AppRunner(admin_app(backend), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, opts.xds_address, opts.admin_port, reuse_address=True)
        try:
            await server.start()
            await self.citadel.start(opts.xds_address, opts.ca_port)
            await site.start()
            log.info(
                "control plane serving xDS on %s:%d, admin on %s:%d, config from %s",
                opts.xds_address, opts.xds_port, opts.xds_address, opts.admin_port,
                opts.config_dir,
            )  # fmt: skip
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._debouncer.run())
                tasks.create_task(self._expire_loop())
        finally:
            await runner.cleanup()
            await self.citadel.stop()
            await self.jwks.close()
            await server.stop(grace=0.5)
            await self.store.stop()
            try:
                self.registry.flush()
            except OSError as e:
                log.error("could not save the registry to %s: %s", opts.state_dir, e)
