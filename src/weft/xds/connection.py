"""Per-stream xDS bookkeeping: what was sent, what was ACKed or NACKed, per type."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from weft.snapshot.proxy import Proxy
from weft.xds import types

Protocol = Literal["sotw", "delta"]


@dataclass
class WatchState:
    """One xDS type on one stream."""

    names: frozenset[str] = frozenset()  # state of the world: empty is wildcard
    requested: bool = False
    sent_version: str = ""  # the type's version (all of its resources) the proxy was brought to
    sent_nonce: str = ""
    sent_at: float = 0.0
    acked_version: str = ""
    nack: str | None = None  # Envoy's error_detail for the last NACK, until a later ACK
    resources_sent: int = 0
    # Delta only: an explicit or legacy wildcard subscription, and what the proxy holds (or was
    # sent, until it answers): resource name -> that resource's version.
    wildcard: bool = False
    known: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """Istio's proxy-status words: SYNCED, NOT SENT, STALE."""
        if not self.sent_nonce:
            return "NOT SENT"
        if self.nack is None and self.acked_version == self.sent_version:
            return "SYNCED"
        return "STALE"

    @property
    def synced(self) -> bool:
        return self.status == "SYNCED"


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
            "types": {types.short_name(t): _type_status(self.watches.get(t)) for t in types.PUSH_ORDER},
        }


def _type_status(watch: WatchState | None) -> dict[str, object]:
    if watch is None:
        return {"status": "NOT SENT", "sent": "", "acked": "", "nack": None, "resources_sent": 0}
    return {
        "status": watch.status,
        "sent": watch.sent_version,
        "acked": watch.acked_version,
        "nack": watch.nack,
        "resources_sent": watch.resources_sent,  # on this stream, counted per resource
    }
