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
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse as Response

from weft.snapshot.proxy import Proxy
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import types
from weft.xds.connection import Connection, WatchState
from weft.xds.generate import Resources

log = logging.getLogger("weft.xds")

WILDCARD = "*"
# Envoy asks for all of these at once; other types are always asked for by name.
WILDCARD_TYPES = frozenset({types.CLUSTER, types.LISTENER})


class ResourceVersions:
    """Per-resource versions (a hash of the resource's bytes), cached by the type's version:
    the type's version is a hash of all its resources, so it is the whole input."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], Mapping[str, str]] = OrderedDict()

    def of(self, resources: Resources) -> Mapping[str, str]:
        key = (resources.type_url, resources.version)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found
        versions = MappingProxyType(
            {
                name: hashlib.sha256(packed.value).hexdigest()[:16]
                for name, packed in resources.items.items()
            }
        )
        self._entries[key] = versions
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return versions


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

    def on_request(self, conn: Connection, request: Request) -> list[Response]:
        type_url = request.type_url
        watch = conn.watch(type_url)
        first = not watch.requested
        if request.response_nonce:
            self._answered(conn, watch, request)
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        if first:
            watch.requested = True
            # A first request that names nothing is a (legacy) wildcard subscription.
            watch.delta.wildcard = type_url in WILDCARD_TYPES and not subscribe
            watch.delta.known = dict(request.initial_resource_versions)
        _subscribe(watch, subscribe, unsubscribe)
        if first or subscribe or unsubscribe:
            watch.delta.resync = True
        responses = self._send(conn, type_url, first=first)
        if type_url == types.CLUSTER:
            responses += self._send(conn, types.ENDPOINT)
        return responses

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
        updated, removed = _diff(watch, versions)
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
        watch.sent_version = resources.version
        watch.sent_nonce = nonce
        watch.sent_at = time.time()
        watch.resources_sent += len(updated)
        self._metrics.pushes.labels(types.short_name(type_url)).inc()
        self._metrics.push_time.labels(types.short_name(type_url)).observe(
            time.monotonic() - started
        )
        if type_url == types.CLUSTER:
            _follow_with_endpoints(conn, resources, updated)
        return [
            Response(
                type_url=type_url,
                system_version_info=resources.version,
                nonce=nonce,
                resources=[
                    discovery_pb2.Resource(
                        name=name, version=versions[name], resource=resources.items[name]
                    )
                    for name in updated
                ],
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


def _follow_with_endpoints(conn: Connection, clusters: Resources, updated: list[str]) -> None:
    """Envoy warms a changed EDS cluster until its endpoints arrive again: resend them. Also
    before EDS is asked for on this stream: a reconnecting Envoy asks for clusters and
    endpoints at once, and a cluster changed meanwhile waits for its endpoints too."""
    watch = conn.watch(types.ENDPOINT)
    for name in updated:
        cluster = cluster_pb2.Cluster()
        clusters.items[name].Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            watch.delta.resend.add(cluster.eds_cluster_config.service_name or cluster.name)
