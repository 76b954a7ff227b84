"""Per-stream xDS bookkeeping: what was sent, what was ACKed or NACKed, per type."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from weft.snapshot.proxy import Proxy
from weft.xds import types


@dataclass
class WatchState:
    """One xDS type on one stream."""

    names: frozenset[str] = frozenset()  # empty: wildcard
    requested: bool = False
    sent_version: str = ""
    sent_nonce: str = ""
    sent_at: float = 0.0
    acked_version: str = ""
    nack: str | None = None  # Envoy's error_detail for the last NACK, until a later ACK

    @property
    def status(self) -> str:
        """Istio's proxy-status words: SYNCED, NOT SENT, STALE."""
        if not self.sent_nonce:
            return "NOT SENT"
        if self.nack is None and self.acked_version == self.sent_version:
            return "SYNCED"
        return "STALE"


@dataclass
class Connection:
    """One ADS stream from one proxy."""

    id: str
    proxy: Proxy
    connected_at: float = field(default_factory=time.time)
    watches: dict[str, WatchState] = field(default_factory=dict)
    pushes: int = 0

    def watch(self, type_url: str) -> WatchState:
        return self.watches.setdefault(type_url, WatchState())

    def status(self) -> dict[str, object]:
        return {
            "id": self.proxy.id,
            "connection": self.id,
            "namespace": self.proxy.namespace,
            "workload": self.proxy.workload,
            "service": self.proxy.service,
            "connected_at": self.connected_at,
            "types": {
                types.short_name(t): {
                    "status": self.watches[t].status if t in self.watches else "NOT SENT",
                    "sent": self.watches[t].sent_version if t in self.watches else "",
                    "acked": self.watches[t].acked_version if t in self.watches else "",
                    "nack": self.watches[t].nack if t in self.watches else None,
                }
                for t in types.PUSH_ORDER
            },
        }
