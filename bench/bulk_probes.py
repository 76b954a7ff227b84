"""Probes for `bench.bulk`: one small request at a time, each timed, in a bounded loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from weft.agent.bootstrap import SidecarIdentity
from weft.snapshot.proxy import InboundPort
from weft.xds import types

MAX_REQUESTS = 50_000
PACE_S = 0.005  # between one answer and the next request: a probe, not a load


class Probe:
    """Sends `request` again and again until stopped or the deadline; keeps each latency.

    The longest latency is the worst pause: how long the server kept a request waiting.
    """

    def __init__(self, request: Callable[[], Awaitable[None]]) -> None:
        self._request = request
        self._stop = asyncio.Event()
        self.latencies: list[float] = []
        self.started: list[float] = []  # monotonic time each request was sent
        self.errors = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self, deadline: float) -> None:
        while not self._stop.is_set() and len(self.latencies) < MAX_REQUESTS:
            started = time.monotonic()
            if started >= deadline:
                return
            try:
                await asyncio.wait_for(self._request(), deadline - started)
            except TimeoutError:
                self._record(started)
                return
            except Exception:  # an error answer still ends a wait; count it
                self.errors += 1
            self._record(started)
            await asyncio.sleep(PACE_S)

    def _record(self, started: float) -> None:
        self.latencies.append(time.monotonic() - started)
        self.started.append(started)

    def worst(self, n: int, since: float) -> list[tuple[float, float]]:
        """The `n` longest requests: (seconds after `since` it was sent, its latency in ms)."""
        pairs = sorted(zip(self.latencies, self.started, strict=True), reverse=True)[:n]
        return [(round(t - since, 2), round(lat * 1000, 1)) for lat, t in pairs]

    def summary(self) -> dict[str, Any]:
        if not self.latencies:
            return {"count": 0, "errors": self.errors, "max_ms": None, "p50_ms": None}
        ordered = sorted(self.latencies)
        return {
            "count": len(ordered),
            "errors": self.errors,
            "max_ms": round(ordered[-1] * 1000, 1),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1),
            "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
        }


def probe_node() -> base_pb2.Node:
    """A sidecar in namespace `probe`, as `weft run` describes one."""
    ident = SidecarIdentity(
        workload="probe",
        namespace="probe",
        service="probe",
        labels={"app": "probe", "version": "v1"},
        service_account="probe",
        proxy_port=30_000,
        inbound=(InboundPort(8080, 40_000, 50_000),),
    )
    metadata = struct_pb2.Struct()
    metadata.update(ident.metadata())
    return base_pb2.Node(
        id=ident.node_id,
        cluster=f"{ident.service}.{ident.namespace}",
        metadata=metadata,
        user_agent_name="bench-bulk-probe",
    )


class AdsProbe:
    """Each request opens an ADS stream, asks for clusters and waits for the answer."""

    def __init__(self, address: str, node: base_pb2.Node) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
        self._stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self._node = node

    async def request(self) -> None:
        call = self._stub.StreamAggregatedResources()
        try:
            await call.write(
                discovery_pb2.DiscoveryRequest(node=self._node, type_url=types.CLUSTER)
            )
            response = await call.read()
            if response is grpc.aio.EOF:
                raise ConnectionError("the control plane ended the stream")
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()
