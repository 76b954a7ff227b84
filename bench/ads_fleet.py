"""The ADS load's streams, whichever protocol they speak: connecting and reconnecting, what
each stream holds per type, following CDS with EDS and LDS with RDS, and the watches the
control commands wait on. `bench.ads_delta` and `bench.ads_sotw` each speak one protocol."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf import struct_pb2

from bench.ads_names import Names
from weft.agent.bootstrap import SidecarIdentity
from weft.xds import types

log = logging.getLogger("bench.adsload")

Protocol = Literal["delta", "sotw"]
PROTOCOLS: tuple[Protocol, ...] = ("delta", "sotw")
SHORT = {url: types.short_name(url) for url in types.PUSH_ORDER}
BY_SHORT = {short: url for url, short in SHORT.items()}
MAX_MESSAGE = 256 * 1024 * 1024
RECONNECT_BASE_S, RECONNECT_MAX_S, MAX_ATTEMPTS = 0.2, 2.0, 100


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


class Fleet(abc.ABC):
    """Every stream, their state, and the watches waiting on them; a subclass speaks one
    protocol (opens the call, writes requests, applies responses)."""

    protocol: ClassVar[Protocol]

    def __init__(self, target: str, identities: list[SidecarIdentity]) -> None:
        self.target = target
        self.identities = identities
        self.states = [{url: TypeState() for url in types.PUSH_ORDER} for _ in identities]
        self.synced_at: list[float | None] = [None] * len(identities)
        self.synced = 0
        self.all_synced = asyncio.Event()
        self.errors = 0
        self.last_errors: dict[int, str] = {}
        self.gave_up = 0
        self.nacks = 0  # sotw: payloads we could not read, NACKed
        self.unreadable = 0  # delta: payloads we could not parse, ACKed all the same
        self.watches: dict[int, Watch] = {}
        self.names = Names()
        self.started_at = 0.0
        self._channels: list[grpc.aio.Channel] = []

    # --- the protocol ----------------------------------------------------------------------
    @abc.abstractmethod
    def _open(self, stub: Any) -> Any:
        """A new ADS call on this stub."""

    @abc.abstractmethod
    def _opening(self, index: int) -> list[Any]:
        """The requests a new stream starts with (the node goes on the first)."""

    @abc.abstractmethod
    async def _on_response(self, index: int, call: Any, response: Any) -> None:
        """Take in a response, answer it, then `_follow` it up."""

    @abc.abstractmethod
    async def _ask_listeners(self, call: Any, listeners: TypeState) -> None:
        """The first LDS request, once clusters are warm."""

    @abc.abstractmethod
    async def _send_names(self, call: Any, type_url: str, st: TypeState, before: set[str]) -> None:
        """Tell the control plane the names now in `st.names`, which were `before`."""

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
        backoff = RECONNECT_BASE_S
        for _ in range(MAX_ATTEMPTS):
            call = self._open(stub)
            opening = self._opening(index)
            try:
                for n, request in enumerate(opening):
                    if n == 0:  # as Envoy with set_node_on_first_message_only
                        request.node.CopyFrom(node)
                    await call.write(request)
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        raise ConnectionError("the control plane ended the stream")
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
            await self._ask_listeners(call, listeners)
        self._acked(index, type_url, state[type_url])

    async def _subscribe(
        self, call: Any, type_url: str, st: TypeState, names: tuple[str, ...]
    ) -> None:
        """Ask for these names, if they are new."""
        if st.subscribed and names == st.names:
            return
        before = set(st.names)
        st.names, st.subscribed = names, True
        await self._send_names(call, type_url, st, before)

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
    def _figures(self, sts: list[TypeState]) -> dict[str, int]:
        """One type's figures over every stream, for `status`."""
        return {
            "acked": sum(1 for s in sts if s.acked),
            "responses": sum(s.responses for s in sts),
            "bytes": sum(s.bytes for s in sts),
            "resources_max": max((s.resources for s in sts), default=0),
            "unchanged": sum(s.unchanged for s in sts),
        }

    def status(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        by_type = {
            short: self._figures([s[url] for s in self.states]) for url, short in SHORT.items()
        }
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
