"""Incremental (delta) ADS: per-resource versions, subscriptions, and only what changed.

Per stream and type the server remembers what the proxy holds (name -> version) and sends
the difference to the current config: changed resources, and the names of removed ones. A
proxy reconnecting after a control-plane restart declares what it holds
(`initial_resource_versions`), so unchanged resources are not sent again.

At most one response per type is unanswered at a time: an ACK then means the proxy holds
everything sent, and a NACK rolls back exactly what that response changed.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse as Response
from google.protobuf import any_pb2

from weft.snapshot.proxy import Proxy
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import types
from weft.xds.connection import Connection, WatchState
from weft.xds.generate import Resources

log = logging.getLogger("weft.xds")

WILDCARD = "*"
# Envoy asks for all of these at once; other types are always asked for by name.
WILDCARD_TYPES = frozenset({types.CLUSTER, types.LISTENER})


_K = TypeVar("_K")
_V = TypeVar("_V")


class Aged(Generic[_K, _V]):
    """A cache that forgets what was not used since the one-before-last `age()`: the server
    ages its caches at every push, so what no proxy needs any more goes within two pushes."""

    def __init__(self) -> None:
        self._now: dict[_K, _V] = {}
        self._before: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        found = self._now.get(key)
        if found is None:
            found = self._before.pop(key, None)
            if found is not None:
                self._now[key] = found
        return found

    def put(self, key: _K, value: _V) -> _V:
        self._now[key] = value
        return value

    def age(self) -> None:
        self._before = self._now
        self._now = {}

    def __len__(self) -> int:
        return len(self._now) + len(self._before)


class ResourceVersions:
    """Per packed resource, computed once for every proxy that gets it (proxies share packed
    resources, weft.xds.pieces): its version (a hash of its bytes), the Resource a delta
    response carries, and for a cluster its EDS name. Keyed by the packed object's id; each
    entry holds the object, so the id stays its own while the entry lives."""

    def __init__(self) -> None:
        self._versions: Aged[int, tuple[any_pb2.Any, str]] = Aged()
        self._resources: Aged[tuple[int, str], tuple[any_pb2.Any, discovery_pb2.Resource]] = Aged()
        self._eds: Aged[int, tuple[any_pb2.Any, str | None]] = Aged()

    def age(self) -> None:
        for cache in (self._versions, self._resources, self._eds):
            cache.age()

    def of(self, resources: Resources) -> Mapping[str, str]:
        return _Versions(resources.items, self)

    def version(self, packed: any_pb2.Any) -> str:
        found = self._versions.get(id(packed))
        if found is None:
            version = hashlib.sha256(packed.value).hexdigest()[:16]
            found = self._versions.put(id(packed), (packed, version))
        return found[1]

    def resource(self, name: str, packed: any_pb2.Any) -> discovery_pb2.Resource:
        """The resource as a delta response carries it."""
        found = self._resources.get((id(packed), name))
        if found is None:
            made = discovery_pb2.Resource(name=name, version=self.version(packed), resource=packed)
            found = self._resources.put((id(packed), name), (packed, made))
        return found[1]

    def eds_name(self, packed: any_pb2.Any) -> str | None:
        """The EDS service name of a packed cluster, or None if it is not an EDS cluster."""
        found = self._eds.get(id(packed))
        if found is None:
            cluster = cluster_pb2.Cluster()
            packed.Unpack(cluster)
            name = None
            if cluster.type == cluster_pb2.Cluster.EDS:
                name = cluster.eds_cluster_config.service_name or cluster.name
            found = self._eds.put(id(packed), (packed, name))
        return found[1]


class _Versions(Mapping[str, str]):
    """name -> version of one type's resources, read through the shared cache."""

    __slots__ = ("_cache", "_items")

    def __init__(self, items: Mapping[str, any_pb2.Any], cache: ResourceVersions) -> None:
        self._items = items
        self._cache = cache

    def __getitem__(self, name: str) -> str:
        return self._cache.version(self._items[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


class DeltaAds:
    """The delta protocol for one server: turns requests and pushes into responses."""

    def __init__(
        self,
        config_for: Callable[[Proxy], Mapping[str, Resources]],
        next_nonce: Callable[[], str],
        metrics: ControlPlaneMetrics,
    ) -> None:
        self._config_for = config_for
        self._next_nonce = next_nonce
        self._metrics = metrics
        self._versions = ResourceVersions()
        self._name_sets: Aged[frozenset[str], frozenset[str]] = Aged()
        self._changes: Aged[
            tuple[str, int, int],
            tuple[Mapping[str, any_pb2.Any], Mapping[str, any_pb2.Any], frozenset[str]],
        ] = Aged()

    def on_request(self, conn: Connection, request: Request) -> list[Response]:
        type_url = request.type_url
        watch = conn.watch(type_url)
        first = not watch.requested
        if request.response_nonce:
            self._answered(conn, watch, request)
        # Interned: a thousand proxies naming the same thousand clusters hold one copy of
        # each name (interned strings are freed once nothing holds them).
        subscribe = {sys.intern(n) for n in request.resource_names_subscribe}
        unsubscribe = set(request.resource_names_unsubscribe)
        if first:
            watch.requested = True
            # A first request that names nothing is a (legacy) wildcard subscription.
            watch.delta.wildcard = type_url in WILDCARD_TYPES and not subscribe
            watch.delta.known = {
                sys.intern(n): v for n, v in request.initial_resource_versions.items()
            }
        _subscribe(watch, subscribe, unsubscribe)
        # Proxies of one view subscribe to the same names: hold one set for all of them.
        watch.names = self._name_sets.get(watch.names) or self._name_sets.put(
            watch.names, watch.names
        )
        if first or subscribe or unsubscribe:
            watch.delta.resync = True
        responses = self._send(conn, type_url, first=first)
        if type_url == types.CLUSTER:
            responses += self._send(conn, types.ENDPOINT)
        return responses

    def age(self) -> None:
        """A new snapshot is current: what no proxy used since the last one goes next time."""
        self._versions.age()
        self._changes.age()
        self._name_sets.age()

    def on_push(self, conn: Connection) -> list[Response]:
        """Every type that changed, in push order; a cluster change is followed by EDS."""
        responses: list[Response] = []
        for type_url in types.PUSH_ORDER:
            responses += self._send(conn, type_url)
        return responses

    # --- ACK and NACK -------------------------------------------------------------------------

    def _answered(self, conn: Connection, watch: WatchState, request: Request) -> None:
        holdings = watch.delta
        if holdings.in_flight is None or request.response_nonce != watch.sent_nonce:
            return  # answers a response that is not the one awaited
        touched, holdings.in_flight = holdings.in_flight, None
        if request.HasField("error_detail"):
            # Envoy keeps what it had: so do we, and resend these only once they change.
            for name, previous in touched.items():
                if previous is None:
                    holdings.known.pop(name, None)
                else:
                    holdings.known[name] = previous
            holdings.basis = None
            watch.nack = request.error_detail.message
            self._metrics.rejects.labels(types.short_name(request.type_url)).inc()
            log.warning(
                "%s rejected %s version %s: %s (it keeps its last good config)",
                conn.proxy.id, types.short_name(request.type_url), watch.sent_version,
                request.error_detail.message,
            )  # fmt: skip
            return
        watch.acked_version = watch.sent_version
        watch.nack = None

    # --- sending --------------------------------------------------------------------------

    def _changed_since(
        self, type_url: str, before: Mapping[str, any_pb2.Any], after: Mapping[str, any_pb2.Any]
    ) -> frozenset[str]:
        """Names whose resource differs between two configs of one type (not the same packed
        object). Proxies of one view share both, so this is worked out once per view."""
        key = (type_url, id(before), id(after))
        found = self._changes.get(key)
        if found is None:
            names = frozenset(
                n for n in before.keys() | after.keys() if before.get(n) is not after.get(n)
            )
            # The entry holds both mappings, so their ids stay theirs while it lives.
            found = self._changes.put(key, (before, after, names))
        return found[2]

    def _send(self, conn: Connection, type_url: str, first: bool = False) -> list[Response]:
        """What the proxy lacks of one type, if anything; `first` answers even with nothing."""
        watch = conn.watches.get(type_url)
        if watch is None or not watch.requested:
            return []
        holdings = watch.delta
        if holdings.in_flight is not None:
            return []  # sent once the proxy answers (every answer comes back here)
        started = time.monotonic()
        resources = self._config_for(conn.proxy).get(type_url) or Resources.of(type_url, [])
        if not (holdings.resync or holdings.resend) and resources.version == watch.sent_version:
            return []
        versions = self._versions.of(resources)
        if holdings.basis is not None and not (holdings.resync or holdings.resend):
            changed = self._changed_since(type_url, holdings.basis, resources.items)
            updated, removed = _diff_changed(watch, versions, changed)
        else:
            updated, removed = _diff(watch, versions)
        holdings.basis = resources.items
        holdings.resync = False
        holdings.resend.clear()
        holdings.asked.clear()
        if not (updated or removed or first):
            if watch.status == "SYNCED":
                watch.acked_version = resources.version
            watch.sent_version = resources.version
            return []
        nonce = self._next_nonce()
        holdings.in_flight = {n: holdings.known.get(n) for n in (*updated, *removed)}
        for name in updated:
            holdings.known[name] = versions[name]
        for name in removed:
            holdings.known.pop(name, None)
        watch.mark_sent(resources.version, nonce, len(updated))
        self._metrics.sent(types.short_name(type_url), time.monotonic() - started)
        if type_url == types.CLUSTER:
            _follow_with_endpoints(conn, resources, updated, self._versions)
        return [
            Response(
                type_url=type_url,
                system_version_info=resources.version,
                nonce=nonce,
                resources=[self._versions.resource(n, resources.items[n]) for n in updated],
                removed_resources=removed,
            )
        ]


def _subscribe(watch: WatchState, subscribe: set[str], unsubscribe: set[str]) -> None:
    """Apply a request's subscription changes."""
    holdings = watch.delta
    if WILDCARD in subscribe:
        holdings.wildcard = True
    if WILDCARD in unsubscribe:
        holdings.wildcard = False
        # The proxy drops what only the wildcard gave it.
        for name in [n for n in holdings.known if n not in watch.names | subscribe]:
            del holdings.known[name]
    new = subscribe - watch.names - {WILDCARD}
    watch.names = (watch.names | new) - unsubscribe
    holdings.asked = (holdings.asked | new) - unsubscribe
    for name in unsubscribe:
        # Forgotten, so that subscribing again sends it again (and, under a wildcard, the
        # proxy expects to be told the resource's state at once).
        holdings.known.pop(name, None)


def _diff(watch: WatchState, versions: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(names to send, names to remove) to bring the proxy to `versions`."""
    holdings = watch.delta
    wanted = versions.keys() if holdings.wildcard else watch.names & versions.keys()
    updated = sorted(
        n for n in wanted if holdings.known.get(n) != versions[n] or n in holdings.resend
    )
    # Names asked for that do not exist are answered as removed, or Envoy waits for them.
    removed = sorted({*holdings.known, *holdings.asked} - versions.keys())
    return updated, removed


def _diff_changed(
    watch: WatchState, versions: Mapping[str, str], changed: frozenset[str]
) -> tuple[list[str], list[str]]:
    """As `_diff`, when the proxy's holdings were in line with a config that differs from
    `versions` only in `changed`: nothing else can need sending or removing."""
    holdings = watch.delta
    known = holdings.known
    updated = sorted(
        n
        for n in changed
        if n in versions and (holdings.wildcard or n in watch.names) and known.get(n) != versions[n]
    )
    removed = sorted(n for n in changed if n not in versions and n in known)
    return updated, removed


def _follow_with_endpoints(
    conn: Connection, clusters: Resources, updated: list[str], cache: ResourceVersions
) -> None:
    """Envoy warms a changed EDS cluster until its endpoints arrive again: resend them. Also
    before EDS is asked for on this stream: a reconnecting Envoy asks for clusters and
    endpoints at once, and a cluster changed meanwhile waits for its endpoints too."""
    watch = conn.watch(types.ENDPOINT)
    for name in updated:
        eds_name = cache.eds_name(clusters.items[name])
        if eds_name is not None:
            watch.delta.resend.add(eds_name)
