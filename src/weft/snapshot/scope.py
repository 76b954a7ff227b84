"""Push scope: which proxies a change between two snapshots can affect.

Most changes are narrow: a VirtualService edit changes the routes of its hosts, a new instance
the endpoints of its service. A proxy that sees none of the changed hosts gets exactly the
config it had, so it is neither regenerated nor pushed to. What each part feeds and whether
its changes are scoped by host is declared in `weft.snapshot.dependencies.PARTS`: a change to
a part no piece reads affects nobody; to a part without `by_host`, everybody.

Parts are compared by identity: `build_snapshot(previous=...)` keeps every unchanged part as
the same object, so a part that is not the same object is taken as changed (never the
reverse, which would leave a proxy stale).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from weft.snapshot.dependencies import PARTS
from weft.snapshot.snapshot import Snapshot


@dataclass(frozen=True)
class ChangeScope:
    """The hosts a change touched, or None: it may affect every proxy; and which parts of
    the snapshot changed (those some piece reads)."""

    hosts: frozenset[str] | None
    parts: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return self.hosts is None

    def affects(self, visible: Collection[str]) -> bool:
        """Whether a proxy that sees the services `visible` is affected."""
        if self.hosts is None:
            return True
        small, large = (
            (self.hosts, visible) if len(self.hosts) < len(visible) else (visible, self.hosts)
        )
        return any(h in large for h in small)


EVERYTHING = ChangeScope(None)


def change_scope(before: Snapshot, after: Snapshot) -> ChangeScope:
    hosts: set[str] = set()
    parts: set[str] = set()
    everything = False
    for part in PARTS:
        old, new = getattr(before, part.name), getattr(after, part.name)
        if old is new or not part.feeds:
            continue
        parts.add(part.name)
        touched = part.by_host(old, new) if part.by_host is not None else None
        if touched is None:
            everything = True
        else:
            hosts |= touched
    return ChangeScope(None if everything else frozenset(hosts), frozenset(parts))
