"""ADS load: M sidecars' ADS streams to one control plane, from one process.

Each stream behaves as Envoy does: its first request carries a node with the metadata our
sidecars send, it subscribes to CDS (wildcard), then to EDS for the EDS clusters it got, then
to LDS (wildcard), then to RDS for the route names in its listeners, and it ACKs every
response. It records, per stream and type, when each version arrived and when it was ACKed.
Payloads are parsed only as far as names need.

`--protocol delta` (the default, as every Envoy `weft run` starts speaks it) opens
`DeltaAggregatedResources`: CDS and LDS are wildcard (a first request naming nothing), EDS
and RDS are subscribed and unsubscribed by name as clusters and listeners come and go, each
response's `resources` and `removed_resources` are applied to what the stream holds, every
response is ACKed with its nonce (never NACKed: an unreadable payload is counted instead), and
a type's version is the response's `system_version_info`. A reconnect declares what it holds
(`initial_resource_versions`). `--protocol sotw` opens `StreamAggregatedResources`, ACKs
with version and nonce, and NACKs a payload it cannot read.

Control is line-oriented JSON: one command per line on stdin, one answer per line on stdout
(logs go to stderr). Times are `time.monotonic()` seconds, one clock for every process here.

    {"id": 1, "op": "status"}
    {"id": 2, "op": "wait_synced", "timeout": 60}    every stream has ACKed CDS, EDS, LDS, RDS
    {"id": 3, "op": "arm", "type": "RDS"}             remember each stream's current RDS version
    {"id": 4, "op": "wait", "watch": 1, "timeout": 30}  until every stream ACKed another one
    {"id": 5, "op": "quit"}

    python -m bench.adsload --xds 127.0.0.1:15010 --proxies 100 [--protocol delta|sotw]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import resource
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

from weft.agent.bootstrap import SidecarIdentity
from weft.snapshot.proxy import InboundPort
from weft.xds import types

log = logging.getLogger("bench.adsload")

Protocol = Literal["delta", "sotw"]
PROTOCOLS: tuple[Protocol, ...] = ("delta", "sotw")
SHORT = {url: types.short_name(url) for url in types.PUSH_ORDER}
BY_SHORT = {short: url for url, short in SHORT.items()}
# Envoy subscribes to these as a wildcard, to the others by name.
WILDCARD_TYPES = frozenset({types.CLUSTER, types.LISTENER})
SERVICE_PORT = 8080
# Ports named in each proxy's metadata (nothing listens on them): distinct per proxy, as
# every sidecar on one host has its own, within range for up to PORT_SPAN proxies.
PORT_SPAN = 10_000
PROXY_PORT_BASE, INBOUND_PORT_BASE, APP_PORT_BASE = 30_000, 40_000, 50_000
MAX_MESSAGE = 256 * 1024 * 1024
RECONNECT_BASE_S, RECONNECT_MAX_S, MAX_ATTEMPTS = 0.2, 2.0, 100
# Distinct cluster payloads remembered for name lookups; cleared when exceeded.
NAME_CACHE_LIMIT = 200_000


def workload_name(index: int, prefix: str = "client", replicas: int = 1) -> str:
    """The workload proxy `index` is a replica of; Sidecars select it by label app=<this>."""
    return f"{prefix}-{index // replicas:05d}"


def identity(index: int, namespace: str, prefix: str, replicas: int) -> SidecarIdentity:
    """Proxy `index` as `weft run` would describe it: labels, ports, certificates over SDS."""
    workload = workload_name(index, prefix, replicas)
    return SidecarIdentity(
        workload=f"{workload}-{index % replicas}" if replicas > 1 else workload,
        namespace=namespace,
        service=workload,
        labels={"app": workload, "version": "v1"},
        service_account=workload,
        proxy_port=PROXY_PORT_BASE + index,
        inbound=(InboundPort(SERVICE_PORT, INBOUND_PORT_BASE + index, APP_PORT_BASE + index),),
        sds_socket="unused",  # only its presence matters: WEFT_SDS "true"
    )


def _head_classes() -> tuple[Any, Any]:
    """Messages with only the Cluster fields EDS subscription needs; the rest stays unparsed.

    Cluster: name = 1, type = 2 (EDS = 3), eds_cluster_config = 3 {service_name = 2}.
    """
    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="bench_adsload_heads.proto", package="benchadsload", syntax="proto3"
    )
    eds = file.message_type.add(name="EdsHead")
    eds.field.add(name="service_name", number=2, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    cluster = file.message_type.add(name="ClusterHead")
    cluster.field.add(name="name", number=1, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    cluster.field.add(name="type", number=2, type=proto.TYPE_INT32, label=proto.LABEL_OPTIONAL)
    cluster.field.add(
        name="eds_cluster_config",
        number=3,
        type=proto.TYPE_MESSAGE,
        type_name=".benchadsload.EdsHead",
        label=proto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("benchadsload.ClusterHead")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("benchadsload.EdsHead")),
    )


ClusterHead, _ = _head_classes()
EDS_TYPE = 3


class Names:
    """EDS names of clusters and route names of listeners, remembered per serialized payload:
    alike proxies get byte-identical resources, so each is parsed once."""

    def __init__(self) -> None:
        self._clusters: dict[bytes, tuple[str, ...]] = {}
        self._listeners: dict[bytes, tuple[str, ...]] = {}

    def cluster_eds(self, value: bytes) -> tuple[str, ...]:
        """The EDS name a serialized Cluster asks for: one, or none if it is not EDS."""
        names = self._clusters.get(value)
        if names is None:
            if len(self._clusters) > NAME_CACHE_LIMIT:
                self._clusters.clear()
            head = ClusterHead.FromString(value)
            names = ()
            if head.type == EDS_TYPE:
                names = (sys.intern(head.eds_cluster_config.service_name or head.name),)
            self._clusters[value] = names
        return names

    def listener_routes(self, value: bytes) -> tuple[str, ...]:
        """The route names a serialized Listener's HttpConnectionManagers ask RDS for."""
        names = self._listeners.get(value)
        if names is None:
            if len(self._listeners) > NAME_CACHE_LIMIT:
                self._listeners.clear()
            names = self._listeners[value] = _listener_routes(value)
        return names

    def eds_names(self, resources: Iterable[Any]) -> tuple[str, ...]:
        return tuple(sorted({n for packed in resources for n in self.cluster_eds(packed.value)}))

    def route_names(self, resources: Iterable[Any]) -> tuple[str, ...]:
        found = {n for packed in resources for n in self.listener_routes(packed.value)}
        return tuple(sorted(found))


def _digest(held: dict[str, str]) -> str:
    """A type's version from what is held, for a response without `system_version_info`."""
    text = "\n".join(f"{name} {version}" for name, version in sorted(held.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _listener_routes(value: bytes) -> tuple[str, ...]:
    listener = listener_pb2.Listener.FromString(value)
    found = set()
    for chain in [*listener.filter_chains, listener.default_filter_chain]:
        for f in chain.filters:
            if f.typed_config.type_url.endswith(".HttpConnectionManager"):
                manager = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                if manager.HasField("rds"):
                    found.add(sys.intern(manager.rds.route_config_name))
    return tuple(sorted(found))


@dataclass
class TypeState:
    """One xDS type on one stream."""

    names: tuple[str, ...] = ()  # subscribed by name (EDS, RDS); CDS and LDS are wildcard
    subscribed: bool = False
    version: str = ""  # last received
    nonce: str = ""
    received_at: float = 0.0
    acked: str = ""
    acked_at: float = 0.0
    responses: int = 0
    resources: int = 0  # sotw: in the last response; delta: held
    bytes: int = 0
    unchanged: int = 0  # responses that changed nothing held: same version, or no new resource
    # Delta only.
    requested: bool = False  # a request for this type went out on the current stream
    held: dict[str, str] = field(default_factory=dict)  # name -> version
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # CDS, LDS: names they need
    resent: int = 0  # resources sent again with the version already held
    unasked: int = 0  # EDS, RDS resources sent that were not subscribed
    # Responses whose version changed with nothing held changing, or the reverse: where
    # "ACKed another version" (what watches wait for) and "got new resources" part.
    disagree: int = 0


@dataclass
class Watch:
    """Waits until every stream has ACKed a version of one type other than its baseline."""

    type_url: str
    baseline: list[str]
    done: dict[int, tuple[float, float]] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class Fleet:
    """Every stream, their state, and the watches waiting on them."""

    def __init__(
        self, target: str, identities: list[SidecarIdentity], protocol: Protocol = "delta"
    ) -> None:
        self.target = target
        self.identities = identities
        self.protocol = protocol
        self.states = [{url: TypeState() for url in types.PUSH_ORDER} for _ in identities]
        self.synced_at: list[float | None] = [None] * len(identities)
        self.synced = 0
        self.all_synced = asyncio.Event()
        self.errors = 0
        self.last_errors: dict[int, str] = {}
        self.gave_up = 0
        self.nacks = 0
        self.unreadable = 0  # delta: payloads we could not parse, ACKed all the same
        self.watches: dict[int, Watch] = {}
        self.names = Names()
        self.started_at = 0.0
        self._channels: list[grpc.aio.Channel] = []

    # --- streams -------------------------------------------------------------------------
    async def run(self) -> None:
        self.started_at = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            for index in range(len(self.identities)):
                tasks.create_task(self._stream(index))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(grace=None)

    async def _stream(self, index: int) -> None:
        # A channel each, as each Envoy has its own connection; a local subchannel pool, or
        # gRPC would share one TCP connection between alike channels. Reconnects back off as
        # our sidecars' bootstrap says (0.2 s to 2 s).
        channel = grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.enable_http_proxy", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.initial_reconnect_backoff_ms", int(RECONNECT_BASE_S * 1000)),
                ("grpc.min_reconnect_backoff_ms", int(RECONNECT_BASE_S * 1000)),
                ("grpc.max_reconnect_backoff_ms", int(RECONNECT_MAX_S * 1000)),
            ],
        )
        self._channels.append(channel)
        ident = self.identities[index]
        metadata = struct_pb2.Struct()
        metadata.update(ident.metadata())
        node = base_pb2.Node(
            id=ident.node_id,
            cluster=f"{ident.service}.{ident.namespace}",
            metadata=metadata,
            user_agent_name="bench-adsload",
        )
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        delta = self.protocol == "delta"
        backoff = RECONNECT_BASE_S
        for _ in range(MAX_ATTEMPTS):
            if delta:
                call = stub.DeltaAggregatedResources(wait_for_ready=True)
                opening = self._delta_subscriptions(index)
            else:
                call = stub.StreamAggregatedResources(wait_for_ready=True)
                opening = self._subscriptions(index)
            try:
                for n, request in enumerate(opening):
                    if n == 0:  # as Envoy with set_node_on_first_message_only
                        request.node.CopyFrom(node)
                    await call.write(request)
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        raise ConnectionError("the control plane ended the stream")
                    if delta:
                        await self._on_delta(index, call, response)
                    else:
                        await self._on_response(index, call, response)
                    backoff = RECONNECT_BASE_S
            except asyncio.CancelledError:
                call.cancel()
                raise
            except Exception as e:  # reconnect as Envoy does; one stream never stops others
                call.cancel()
                self.errors += 1
                self.last_errors[index] = f"{type(e).__name__}: {e}"
                log.debug("stream %d ended: %s", index, e)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(2 * backoff, RECONNECT_MAX_S)
        self.gave_up += 1

    def _resubscribing(self, index: int) -> list[str]:
        """The types a stream's opening requests ask for: CDS first; after a reconnect also
        every type it had."""
        state = self.states[index]
        state[types.CLUSTER].subscribed = True
        return [
            url
            for url, st in state.items()
            if url == types.CLUSTER or (st.subscribed and (st.names or url == types.LISTENER))
        ]

    def _subscriptions(self, index: int) -> list[Any]:
        """State of the world: each type with the version it last accepted (no nonce: a new
        stream)."""
        state = self.states[index]
        return [
            discovery_pb2.DiscoveryRequest(
                version_info=state[url].acked, type_url=url, resource_names=list(state[url].names)
            )
            for url in self._resubscribing(index)
        ]

    def _delta_subscriptions(self, index: int) -> list[Any]:
        """Delta: CDS and LDS wildcard (no names), EDS and RDS by name; each declares the
        resources it holds, so the control plane resends only what changed meanwhile."""
        state = self.states[index]
        for st in state.values():
            st.requested, st.nonce = False, ""
        requests = []
        for url in self._resubscribing(index):
            st = state[url]
            st.requested = True
            requests.append(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=url,
                    resource_names_subscribe=list(st.names),
                    initial_resource_versions=st.held,
                )
            )
        return requests

    async def _on_response(self, index: int, call: Any, response: Any) -> None:
        now = time.monotonic()
        type_url = response.type_url
        state = self.states[index]
        st = state.get(type_url)
        if st is None:
            return  # a type we never asked for
        if st.responses and response.version_info == st.version:
            st.unchanged += 1
        st.version, st.nonce, st.received_at = response.version_info, response.nonce, now
        st.responses += 1
        st.resources = len(response.resources)
        st.bytes += response.ByteSize()
        eds_names: tuple[str, ...] = ()
        route_names: tuple[str, ...] = ()
        error = ""
        try:
            if type_url == types.CLUSTER:
                eds_names = self.names.eds_names(response.resources)
            elif type_url == types.LISTENER:
                route_names = self.names.route_names(response.resources)
        except Exception as e:  # a payload we cannot read: NACK it, as Envoy would
            error = f"{type(e).__name__}: {e}"
        await call.write(self._answer(type_url, st, error))
        if error:
            self.nacks += 1
            return
        st.acked, st.acked_at = st.version, time.monotonic()
        await self._follow(index, call, type_url, eds_names, route_names)

    async def _on_delta(self, index: int, call: Any, response: Any) -> None:
        """Apply a delta response to what the stream holds, ACK it, then follow it up."""
        now = time.monotonic()
        type_url = response.type_url
        state = self.states[index]
        st = state.get(type_url)
        if st is None:
            return  # a type we never asked for
        st.nonce, st.received_at = response.nonce, now
        st.responses += 1
        st.bytes += response.ByteSize()
        held, refs, names = st.held, st.refs, self.names
        wanted = None if type_url in WILDCARD_TYPES else set(st.names)
        changed = 0
        try:
            for resource in response.resources:
                name, version = sys.intern(resource.name), sys.intern(resource.version)
                if held.get(name) == version:
                    st.resent += 1
                else:
                    changed += 1
                if wanted is not None and name not in wanted:
                    st.unasked += 1
                held[name] = version
                if type_url == types.CLUSTER:
                    refs[name] = names.cluster_eds(resource.resource.value)
                elif type_url == types.LISTENER:
                    refs[name] = names.listener_routes(resource.resource.value)
        except Exception as e:  # Envoy would NACK; this load ACKs, and counts it
            self.unreadable += 1
            self.last_errors[index] = f"unreadable {SHORT[type_url]}: {type(e).__name__}: {e}"
        for name in response.removed_resources:
            # News if held, or if asked for: a subscribed name that does not exist.
            if held.pop(name, None) is not None or (wanted is not None and name in wanted):
                changed += 1
            refs.pop(name, None)
        version = response.system_version_info or _digest(held)
        if st.responses > 1 and not changed:
            st.unchanged += 1
        if st.responses > 1 and (version != st.version) != bool(changed):
            st.disagree += 1
        st.resources = len(held)
        st.version = version
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
        )
        st.acked, st.acked_at = st.version, time.monotonic()
        # Of every cluster held its EDS name, of every listener its route names (no refs for
        # other types): what Envoy would then ask for.
        needed = tuple(sorted({n for found in refs.values() for n in found}))
        if type_url == types.CLUSTER:
            await self._follow(index, call, type_url, needed, ())
        else:
            await self._follow(index, call, type_url, (), needed)

    async def _follow(
        self,
        index: int,
        call: Any,
        type_url: str,
        eds_names: tuple[str, ...],
        route_names: tuple[str, ...],
    ) -> None:
        """After an ACK: subscribe to what it refers to, ask for listeners once clusters are
        warm, and tell the watches."""
        state = self.states[index]
        if type_url == types.CLUSTER:
            await self._subscribe(call, types.ENDPOINT, state[types.ENDPOINT], eds_names)
        if type_url == types.LISTENER:
            await self._subscribe(call, types.ROUTE, state[types.ROUTE], route_names)
        # Envoy asks for listeners once its clusters are initialized: after their endpoints.
        listeners = state[types.LISTENER]
        if not listeners.subscribed and (
            type_url == types.ENDPOINT or (type_url == types.CLUSTER and not eds_names)
        ):
            listeners.subscribed = True
            if self.protocol == "delta":
                listeners.requested = True
                await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=types.LISTENER))
            else:
                await call.write(self._answer(types.LISTENER, listeners, ""))
        self._acked(index, type_url, state[type_url])

    async def _subscribe(
        self, call: Any, type_url: str, st: TypeState, names: tuple[str, ...]
    ) -> None:
        """Ask for these names, if they are new: state of the world with the last version and
        nonce; delta with the names added and removed."""
        if st.subscribed and names == st.names:
            return
        before = set(st.names)
        st.names, st.subscribed = names, True
        if self.protocol == "sotw":
            if names:  # no names: nothing to ask for (an empty list would mean "everything")
                await call.write(self._answer(type_url, st, ""))
            return
        subscribe = sorted(set(names) - before)
        unsubscribe = sorted(before - set(names))
        if not st.requested and not subscribe:
            return  # a first request naming nothing would be a wildcard
        for name in unsubscribe:  # Envoy drops what it no longer asks for
            st.held.pop(name, None)
        if subscribe or unsubscribe:
            st.requested = True
            await call.write(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=type_url,
                    resource_names_subscribe=subscribe,
                    resource_names_unsubscribe=unsubscribe,
                )
            )

    @staticmethod
    def _answer(type_url: str, st: TypeState, error: str) -> Any:
        request = discovery_pb2.DiscoveryRequest(
            version_info=st.acked if error else st.version,
            response_nonce=st.nonce,
            type_url=type_url,
            resource_names=list(st.names),
        )
        if error:
            request.error_detail.message = error
        return request

    def _acked(self, index: int, type_url: str, st: TypeState) -> None:
        for watch in self.watches.values():
            if (
                watch.type_url == type_url
                and index not in watch.done
                and st.acked != watch.baseline[index]
            ):
                watch.done[index] = (st.received_at, st.acked_at)
                if len(watch.done) == len(self.identities):
                    watch.complete.set()
        if self.synced_at[index] is None and self._is_synced(index):
            self.synced_at[index] = st.acked_at
            self.synced += 1
            if self.synced == len(self.identities):
                self.all_synced.set()

    def _is_synced(self, index: int) -> bool:
        state = self.states[index]
        return all(
            state[url].acked or (url in (types.ENDPOINT, types.ROUTE) and not state[url].names)
            for url in types.PUSH_ORDER
        ) and bool(state[types.LISTENER].acked)

    # --- control -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        by_type = {}
        for url, short in SHORT.items():
            sts = [s[url] for s in self.states]
            by_type[short] = {
                "acked": sum(1 for s in sts if s.acked),
                "responses": sum(s.responses for s in sts),
                "bytes": sum(s.bytes for s in sts),
                "resources_max": max((s.resources for s in sts), default=0),
                "unchanged": sum(s.unchanged for s in sts),
            }
            if self.protocol == "delta":
                by_type[short]["resent"] = sum(s.resent for s in sts)
                by_type[short]["unasked"] = sum(s.unasked for s in sts)
                by_type[short]["disagree"] = sum(s.disagree for s in sts)
        return {
            "protocol": self.protocol,
            "streams": len(self.identities),
            "answered": sum(1 for s in self.states if s[types.CLUSTER].responses),
            "synced": self.synced,
            "errors": self.errors,
            "gave_up": self.gave_up,
            "first_errors": sorted(set(self.last_errors.values()))[:3],
            "nacks": self.nacks,
            "unreadable": self.unreadable,
            "types": by_type,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
        }

    def arm(self, short: str) -> int:
        type_url = BY_SHORT[short]
        watch_id = len(self.watches) + 1
        self.watches[watch_id] = Watch(type_url, [s[type_url].acked for s in self.states])
        return watch_id

    async def wait(self, watch_id: int, timeout: float) -> dict[str, Any]:
        watch = self.watches[watch_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.complete.wait(), timeout)
        del self.watches[watch_id]
        done = [watch.done.get(i) for i in range(len(self.identities))]
        return {
            "ok": watch.complete.is_set(),
            "done": len(watch.done),
            "received": [d[0] if d else None for d in done],
            "acked": [d[1] if d else None for d in done],
        }

    async def wait_synced(self, timeout: float) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_synced.wait(), timeout)
        return {
            "ok": self.all_synced.is_set(),
            "synced": self.synced,
            "started_at": self.started_at,
            "synced_at": self.synced_at,
            **self.status(),
        }


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _serve_commands(fleet: Fleet, max_seconds: float) -> None:
    """Answer commands from stdin until `quit`, end of input, or `max_seconds`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = time.monotonic() + max_seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(reader.readline(), left)
        except TimeoutError:
            break
        if not line:
            break
        try:
            command = json.loads(line)
            op = command["op"]
            timeout = min(float(command.get("timeout", 30)), max(0.0, left))
            answer: dict[str, Any]
            if op == "quit":
                _emit({"id": command.get("id"), "ok": True})
                return
            if op == "status":
                answer = fleet.status()
            elif op == "wait_synced":
                answer = await fleet.wait_synced(timeout)
            elif op == "arm":
                answer = {"watch": fleet.arm(str(command["type"]))}
            elif op == "wait":
                answer = await fleet.wait(int(command["watch"]), timeout)
            else:
                answer = {"error": f"unknown op {op!r}"}
        except (ValueError, KeyError, TypeError) as e:
            answer = {"error": f"bad command {line[:200]!r}: {e}"}
        _emit({"id": command.get("id") if isinstance(command, dict) else None, **answer})


async def main_async(args: argparse.Namespace) -> int:
    identities = [
        identity(i, args.namespace, args.prefix, args.replicas) for i in range(args.proxies)
    ]
    fleet = Fleet(args.xds, identities, args.protocol)
    _emit(
        {"event": "started", "pid": os.getpid(), "proxies": args.proxies, "protocol": args.protocol}
    )
    streams = asyncio.create_task(fleet.run())
    try:
        await _serve_commands(fleet, args.max_seconds)
    finally:
        streams.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await streams
        await fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.adsload", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--xds", required=True, help="the control plane's ADS address, HOST:PORT")
    parser.add_argument("--proxies", type=int, required=True, help="streams to open (M)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="delta",
        help="incremental ADS, as our sidecars speak it (default), or state of the world",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--prefix", default="client", help="workload names: PREFIX-00000, ...")
    parser.add_argument(
        "--replicas", type=int, default=1, help="proxies per workload (alike labels)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800, help="exit after this long whatever happens"
    )
    args = parser.parse_args(argv)
    if not 0 < args.proxies <= PORT_SPAN:
        parser.error(f"--proxies must be 1-{PORT_SPAN}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
