"""The generation cache the ADS server serves configs from.

Whole configs per proxy and shared parts per view, for the current snapshot; below them the
pieces of `weft.xds.pieces`, across snapshots. A new snapshot keeps the configs of proxies its
change cannot affect (push scope), and rebuilds other views from their previous parts where
the change allows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from weft.snapshot.dependencies import Piece, reads
from weft.snapshot.proxy import Proxy, ProxyShape
from weft.snapshot.scope import ChangeScope
from weft.snapshot.snapshot import Snapshot
from weft.xds.builders import OwnPart, Pieces
from weft.xds.generate import Resources
from weft.xds.pieces import (
    SharedView,
    ViewKey,
    build_shared,
    generate_with,
    own_part,
    view_key,
)


@dataclass(frozen=True)
class _Entry:
    view: ViewKey
    own: OwnPart
    config: dict[str, Resources]


# What a proxy's own part (listeners, inbound clusters) is made from: a change to none of
# these keeps it.
_OWN_INPUTS = reads(Piece.LISTENERS)


class GenerationCache:
    """Whole configs per proxy and shared parts per view, for the current snapshot; pieces
    (per service, cluster, virtual host, proxy) across snapshots, by their inputs.

    `advance(snapshot, keep)` makes a new snapshot current: configs of the proxies in `keep`
    (those the change cannot affect, by push scope) carry over, everything else is rebuilt
    from pieces on demand.
    """

    def __init__(self, max_entries: int = 16384) -> None:
        self._max = max_entries
        self._views: dict[ViewKey, SharedView] = {}
        self._entries: OrderedDict[ProxyShape, _Entry] = OrderedDict()
        self._version: int | None = None
        # The previous snapshot's views, and what changed since, when the change was narrow.
        self._prior: dict[ViewKey, SharedView] = {}
        self._changed: frozenset[str] = frozenset()
        self._changed_hosts: frozenset[str] = frozenset()
        # Own parts of the proxies the change woke, when it did not feed them.
        self._prior_own: dict[ProxyShape, OwnPart] = {}
        self.pieces = Pieces()
        self.hits = 0
        self.misses = 0

    @property
    def view_count(self) -> int:
        return len(self._views)

    def advance(
        self, snap: Snapshot, keep: Iterable[Proxy] = (), scope: ChangeScope | None = None
    ) -> None:
        """Make `snap` current. `keep`: proxies whose config carries over as it is; `scope`:
        the change from the previous snapshot, whose views are reused where it allows."""
        if snap.version == self._version:
            return
        narrow = scope is not None and not scope.everything
        self._prior = self._views if narrow else {}
        self._changed = scope.parts if scope is not None and narrow else frozenset()
        self._changed_hosts = (scope.hosts or frozenset()) if scope is not None else frozenset()
        kept: OrderedDict[ProxyShape, _Entry] = OrderedDict()
        for proxy in keep:
            key = proxy.config_key()
            entry = self._entries.get(key)
            if entry is not None:
                kept[key] = entry
        keep_own = narrow and not self._changed & _OWN_INPUTS
        self._prior_own = (
            {k: e.own for k, e in self._entries.items() if k not in kept} if keep_own else {}
        )
        self._views = {e.view: self._views[e.view] for e in kept.values() if e.view in self._views}
        self._entries = kept
        self._version = snap.version
        self.pieces.age()

    def visible_hosts(self, proxy: Proxy) -> Collection[str] | None:
        """The services the proxy's current config covers; None if none was built."""
        entry = self._entries.get(proxy.config_key())
        if entry is None:
            return None
        shared = self._views.get(entry.view)
        return shared.hosts if shared is not None else None

    def get(self, proxy: Proxy, snap: Snapshot) -> dict[str, Resources]:
        if snap.version != self._version:
            self.advance(snap)
        key = proxy.config_key()
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found.config
        self.misses += 1
        view = view_key(proxy, snap)
        shared = self._views.get(view)
        if shared is None:
            prior = self._prior.get(view)
            shared = self._views[view] = build_shared(
                proxy, snap, self.pieces, prior, self._changed, self._changed_hosts
            )
        own = self._prior_own.get(key) or own_part(proxy, snap, self.pieces)
        built = generate_with(shared, own, self.pieces)
        self._entries[key] = _Entry(view, own, built)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return built
