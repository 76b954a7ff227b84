"""ADS on grpc.aio, state of the world and delta: serves snapshots, knows nothing of config
sources. Each protocol's logic lives in its own module: `weft.xds.sotw`, `weft.xds.delta`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from functools import partial
from typing import TypeVar, cast

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format

from weft.contract.wire import MessageError
from weft.snapshot.proxy import Proxy, proxy_from_node
from weft.snapshot.scope import change_scope
from weft.snapshot.snapshot import Snapshot
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds.cache import GenerationCache
from weft.xds.connection import Connection, Protocol
from weft.xds.delta import DeltaAds
from weft.xds.generate import InconsistentConfig, Resources
from weft.xds.isolate import LeftOut
from weft.xds.resource_versions import ResourceVersions
from weft.xds.sotw import SotwAds
from weft.xds.stream import pump_requests

log = logging.getLogger("weft.xds")

_PUSH = object()

_Request = TypeVar("_Request", discovery_pb2.DiscoveryRequest, discovery_pb2.DeltaDiscoveryRequest)
_Response = TypeVar(
    "_Response", discovery_pb2.DiscoveryResponse, discovery_pb2.DeltaDiscoveryResponse
)


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """Streams config to proxies over either ADS protocol; `push(snapshot)` sends each proxy
    what changed for it."""

    def __init__(self, snapshot: Snapshot, metrics: ControlPlaneMetrics | None = None) -> None:
        self._snapshot = snapshot
        self._snapshot_at = time.monotonic()
        self._cache = GenerationCache()
        self._queues: dict[str, asyncio.Queue[object]] = {}
        self.connections: dict[str, Connection] = {}
        self._by_version: Counter[str] = Counter()
        self.metrics = metrics or ControlPlaneMetrics()
        # Nonces must differ across restarts too, or Envoy may mistake a new response for old.
        self._nonce_prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)
        versions = ResourceVersions()
        self._sotw = SotwAds(self.config_for, self._nonce, self.metrics, versions, self._wake)
        self._delta = DeltaAds(self.config_for, self._nonce, self.metrics, versions, self._wake)
        self.metrics.left_out = self.left_out

    def _nonce(self) -> str:
        return f"{self._nonce_prefix}-{next(self._ids)}"

    def _wake(self, conn: Connection, delay: float) -> None:
        """Look at one stream again after `delay`, as after a push."""
        queue = self._queues.get(conn.id)
        if queue is not None:
            asyncio.get_running_loop().call_later(delay, queue.put_nowait, _PUSH)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def push(self, snapshot: Snapshot) -> int:
        """Make `snapshot` current and wake the streams of the proxies it can change (push
        scope); return how many. Each stream generates its proxy's config itself, so the
        first proxies are served while later ones wait their turn on the event loop."""
        scope = change_scope(self._snapshot, snapshot)
        woken: list[Connection] = []
        unaffected: list[Proxy] = []
        for conn in self.connections.values():
            visible = self._cache.visible_hosts(conn.proxy)
            if scope.everything or visible is None or scope.affects(visible):
                woken.append(conn)
            else:
                unaffected.append(conn.proxy)
        self._cache.advance(snapshot, keep=unaffected, scope=scope)
        self._delta.age()
        self._snapshot = snapshot
        self._snapshot_at = time.monotonic()
        for conn in woken:
            queue = self._queues.get(conn.id)
            if queue is not None:
                queue.put_nowait(_PUSH)
        log.debug(
            "snapshot %d: %d proxies to push, %d unaffected (scope: %s)",
            snapshot.version, len(woken), len(unaffected),
            "everything" if scope.hosts is None else sorted(scope.hosts),
        )  # fmt: skip
        return len(woken)

    def config_for(self, proxy: Proxy) -> dict[str, Resources]:
        return self._cache.get(proxy, self._snapshot)

    def left_out(self) -> list[LeftOut]:
        """Objects generation currently leaves out (it failed with them)."""
        return self._cache.pieces.left_out.current(self._snapshot)

    def find(self, proxy_id: str) -> Connection | None:
        """A connection by proxy id, connection id, or unique prefix of either."""
        for conn in self.connections.values():
            if proxy_id in (conn.proxy.id, conn.id):
                return conn
        matches = [
            c
            for c in self.connections.values()
            if proxy_id in c.proxy.id or c.proxy.workload.startswith(proxy_id)
        ]
        return matches[0] if len(matches) == 1 else None

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[
            discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse
        ],
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        sotw = self._sotw
        stream = self._serve("sotw", request_iterator, context, sotw.on_request, sotw.on_push)
        async with contextlib.aclosing(stream):
            async for response in stream:
                yield response

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext[
            discovery_pb2.DeltaDiscoveryRequest, discovery_pb2.DeltaDiscoveryResponse
        ],
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        delta = self._delta
        stream = self._serve("delta", request_iterator, context, delta.on_request, delta.on_push)
        async with contextlib.aclosing(stream):
            async for response in stream:
                yield response

    async def _serve(
        self,
        protocol: Protocol,
        requests: AsyncIterator[_Request],
        context: grpc.aio.ServicerContext[_Request, _Response],
        on_request: Callable[[Connection, _Request], list[_Response]],
        on_push: Callable[[Connection], list[_Response]],
    ) -> AsyncGenerator[_Response, None]:
        """One stream of either protocol: requests and pushes, handled one at a time."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        conn: Connection | None = None
        reader = asyncio.create_task(pump_requests(requests, queue))
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    break
                if event is _PUSH:
                    if conn is not None:
                        responses = self._guard(conn, partial(on_push, conn))
                        if responses:
                            conn.pushes += 1
                            self.metrics.convergence.observe(time.monotonic() - self._snapshot_at)
                        for response in responses:
                            yield response
                    continue
                request = cast(_Request, event)
                if conn is None:
                    try:
                        conn = self._open(request.node, protocol, queue)
                    except MessageError as e:  # its metadata would break generation
                        log.warning("refused a proxy's stream: %s", e)
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
                        return
                    if conn is None:
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, "first request must carry node.id"
                        )
                        return
                for response in self._guard(conn, partial(on_request, conn, request)):
                    yield response
        finally:
            reader.cancel()
            if conn is not None:
                self._close(conn)

    def _guard(self, conn: Connection, handle: Callable[[], list[_Response]]) -> list[_Response]:
        """Generation failing for one proxy (a bug: inconsistent config) sends it nothing
        new: it keeps its last good config, and every other stream goes on."""
        try:
            return handle()
        except InconsistentConfig as e:
            log.error("not sending new config to %s, it keeps its last: %s", conn.proxy.id, e)
        except Exception:
            log.exception("not sending new config to %s: generation failed", conn.proxy.id)
        return []

    def _open(
        self, node: base_pb2.Node, protocol: Protocol, queue: asyncio.Queue[object]
    ) -> Connection | None:
        if not node.id:
            return None
        metadata = json_format.MessageToDict(node.metadata)
        proxy = proxy_from_node(node.id, metadata)
        conn = Connection(id=f"{proxy.id}-{next(self._ids)}", proxy=proxy, protocol=protocol)
        self.connections[conn.id] = conn
        self._queues[conn.id] = queue
        self._count_connected(proxy.version, +1)
        log.info("proxy connected (%s): %s", protocol, proxy.id)
        return conn

    def _close(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self._queues.pop(conn.id, None)
        self._count_connected(conn.proxy.version, -1)
        log.info("proxy disconnected: %s", conn.proxy.id)

    def _count_connected(self, version: str, change: int) -> None:
        """`pilot_xds{version}`: connected proxies by their agent's version, as istiod has it."""
        self._by_version[version] += change
        self.metrics.connected.labels(version or "unknown").set(self._by_version[version])
