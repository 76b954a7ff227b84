"""Per-stream xDS bookkeeping: what was sent, what was ACKed or NACKed, per type."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from google.protobuf import any_pb2

from weft.snapshot.proxy import Proxy
from weft.xds import types
from weft.xds.subscription import Subscription

Protocol = Literal["sotw", "delta"]


# A version no resource has: the proxy holds either what it had or what it was last sent.
UNSURE = "?"


@dataclass
class Holdings:
    """Delta xDS: what one proxy holds of one type, resource by resource."""

    wildcard: bool = False
    # name -> version, as sent (and not refused), declared by the proxy, or UNSURE.
    known: dict[str, str] = field(default_factory=dict)
    # The unanswered response: each name it sent -> its version (None: removed).
    in_flight: dict[str, str | None] | None = None
    whole: bool = True  # the unanswered response left nothing out: its ACK means in sync
    resend: set[str] = field(default_factory=set)  # send even if unchanged (EDS after CDS)
    asked: set[str] = field(default_factory=set)  # newly subscribed, not yet answered
    resync: bool = False  # subscriptions changed: compare even if the config did not
    # The resources `known` was last brought in line with (None after a NACK): the next
    # comparison need only look at what differs from them.
    basis: Mapping[str, any_pb2.Any] | None = None
    # Names the proxy may have refused, with the type's version then: not sent again until
    # that version changes (Envoy would refuse the same bytes again).
    rejected: set[str] = field(default_factory=set)
    rejected_at: str = ""
    # Declared on reconnect and not sent since; see DeltaAds._check_claims.
    claimed: set[str] = field(default_factory=set)


@dataclass
class WatchState(Subscription):
    """One xDS type on one stream; with delta, also what the proxy holds of it."""

    delta: Holdings = field(default_factory=Holdings)
    # Make before break (weft.xds.sequencing). Held by the proxy, gone from the config, and
    # not removed yet: a route the proxy holds may still name them.
    retiring: set[str] = field(default_factory=set)
    # Endpoints: of clusters just sent, not yet taken; routes must not name those clusters.
    warming: set[str] = field(default_factory=set)
    # Listeners and routes: a response waits for the clusters they may name, since when, and
    # whether it answers a request (so it goes even if nothing changed).
    held_since: float | None = None
    held_answer: bool = False
    # State of the world, clusters: the resources of the last response, by name.
    sent_items: Mapping[str, any_pb2.Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        found = super().status
        return "STALE" if found == "SYNCED" and self.retiring else found


@dataclass
class Connection:
    """One ADS stream from one proxy."""

    id: str
    proxy: Proxy
    protocol: Protocol = "sotw"
    connected_at: float = field(default_factory=time.time)
    watches: dict[str, WatchState] = field(default_factory=dict)
    pushes: int = 0

    def watch(self, type_url: str) -> WatchState:
        return self.watches.setdefault(type_url, WatchState())

    def status(self) -> dict[str, object]:
        return {
            "id": self.proxy.id,
            "connection": self.id,
            "protocol": self.protocol,
            "namespace": self.proxy.namespace,
            "workload": self.proxy.workload,
            "service": self.proxy.service,
            "connected_at": self.connected_at,
            "types": {
                types.short_name(t): _type_status(self.watches.get(t)) for t in types.PUSH_ORDER
            },
        }


def _type_status(watch: WatchState | None) -> dict[str, object]:
    if watch is None:
        watch = WatchState()
    return {
        "status": watch.status,
        "sent": watch.sent_version,
        "acked": watch.acked_version,
        "nack": watch.nack,
        "resources_sent": watch.resources_sent,  # on this stream, one per resource
    }
