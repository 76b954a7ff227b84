"""Incremental (delta) ADS: per-resource versions, subscriptions, and only what changed.

Per stream and type the server remembers what the proxy holds (name -> version) and sends
the difference to the current config: changed resources, and the names of removed ones. A
proxy reconnecting after a control-plane restart declares what it holds
(`initial_resource_versions`), so unchanged resources are not sent again.

At most one response per type is unanswered at a time, so an ACK means the proxy holds
everything that response sent. A NACK says less: Envoy still applies every resource of the
response it accepts, and every removal, but records none of them as held (what it declares
on a reconnect is what it had before). So after a NACK each name the response touched is
UNSURE, and the server at once sends again what Envoy did not refuse: the removals, and the
resources its error does not name. Accepted, that brings Envoy's own record in line with
what it applied; what it refused waits for the config to change.

A change reaches the proxy make before break (weft.xds.sequencing): removals of clusters and
their endpoints wait until the proxy has taken the routes that stopped naming them.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse as Response
from google.protobuf import any_pb2

from weft.snapshot.proxy import Proxy
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import sequencing, types
from weft.xds.connection import UNSURE, Connection, Holdings, WatchState
from weft.xds.generate import Resources
from weft.xds.resource_versions import Aged, ResourceVersions

log = logging.getLogger("weft.xds")

WILDCARD = "*"
# Envoy asks for all of these at once; other types are always asked for by name.
WILDCARD_TYPES = frozenset({types.CLUSTER, types.LISTENER})


class DeltaAds:
    """The delta protocol for one server: turns requests and pushes into responses."""

    def __init__(
        self,
        config_for: Callable[[Proxy], Mapping[str, Resources]],
        next_nonce: Callable[[], str],
        metrics: ControlPlaneMetrics,
        versions: ResourceVersions,
        wake_later: sequencing.WakeLater,
    ) -> None:
        self._config_for = config_for
        self._next_nonce = next_nonce
        self._metrics = metrics
        self._versions = versions
        self._wake_later = wake_later
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
            if type_url == types.CLUSTER:
                watch.delta.claimed = set(watch.delta.known)
        _subscribe(watch, subscribe, unsubscribe)
        # Proxies of one view subscribe to the same names: hold one set for all of them.
        watch.names = self._name_sets.get(watch.names) or self._name_sets.put(
            watch.names, watch.names
        )
        if first or subscribe or unsubscribe:
            watch.delta.resync = True
        responses = self._send(conn, type_url, first=first)
        if type_url == types.ENDPOINT and first and self._check_claims(conn, watch):
            responses = self._send(conn, types.CLUSTER) + responses
        if type_url == types.CLUSTER:
            responses += self._send(conn, types.ENDPOINT)
        return responses + self._next_steps(conn)

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
        return responses + self._next_steps(conn)

    def _next_steps(self, conn: Connection) -> list[Response]:
        """Listeners and routes that waited for clusters to warm, and removals that waited
        for the proxy to take new routes, if either may go now."""
        responses: list[Response] = []
        for type_url in sequencing.held(conn):
            responses += self._send(conn, type_url)
        if any(w.retiring for w in conn.watches.values()):
            responses += self._send(conn, types.CLUSTER) + self._send(conn, types.ENDPOINT)
        return responses

    # --- ACK and NACK -------------------------------------------------------------------------

    def _answered(self, conn: Connection, watch: WatchState, request: Request) -> None:
        holdings = watch.delta
        if holdings.in_flight is None or request.response_nonce != watch.sent_nonce:
            return  # answers a response that is not the one awaited
        sent, holdings.in_flight = holdings.in_flight, None
        watch.awaiting = False
        if request.HasField("error_detail"):
            message = request.error_detail.message
            _refused(holdings, sent, message, watch.sent_version)
            if request.type_url == types.CLUSTER:
                # Envoy may have refused any of them: routes wait for none.
                conn.watch(types.ENDPOINT).warming.clear()
            watch.nack = message
            self._metrics.rejects.labels(types.short_name(request.type_url)).inc()
            log.warning(
                "%s rejected %s version %s: %s (it keeps its last good config)",
                conn.proxy.id, types.short_name(request.type_url), watch.sent_version, message,
            )  # fmt: skip
            return
        watch.acked_version = watch.sent_version
        if holdings.whole:
            watch.nack = None
        if watch.warming:
            watch.warming.difference_update(n for n, version in sent.items() if version)
            if not watch.warming:
                watch.warming = set()  # an emptied set keeps its table: a thousand proxies' worth

    def _check_claims(self, conn: Connection, endpoints: WatchState) -> bool:
        """Test what a reconnecting Envoy declares against what it subscribes to.

        Envoy's record of its clusters misses the removals of a NACKed response, which it
        applied: it may declare clusters it no longer has. Each EDS cluster it has
        subscribes to its endpoints at once; one declared that does not, it lacks. Whether
        any such was found."""
        clusters = conn.watches.get(types.CLUSTER)
        if clusters is None or not clusters.delta.claimed:
            return False
        current = (self._config_for(conn.proxy).get(types.CLUSTER) or _none(types.CLUSTER)).items
        lacking = []
        for name in clusters.delta.claimed:
            packed = current.get(name)
            eds_name = None if packed is None else self._versions.eds_name(packed)
            if eds_name is not None and eds_name not in endpoints.names:
                lacking.append(name)
        clusters.delta.claimed.clear()
        if lacking:
            log.info(
                "%s declared clusters it does not subscribe endpoints for; sending them: %s",
                conn.proxy.id, ", ".join(sorted(lacking)),
            )  # fmt: skip
            for name in lacking:
                clusters.delta.known.pop(name, None)
            clusters.delta.resync = True
        return bool(lacking)

    # --- sending --------------------------------------------------------------------------

    def _removable(
        self,
        conn: Connection,
        watch: WatchState,
        config: Mapping[str, Resources],
        versions: Mapping[str, str],
        removed: list[str],
    ) -> list[str]:
        """Of the names to remove, those that may go now; the others wait in `retiring`.

        Make before break, as Envoy's xDS guidance has it: a cluster the proxy holds goes
        once no route it holds can name it (it has taken the current listeners and routes),
        and its endpoints once the cluster has gone (an EDS cluster's endpoints are served
        under the cluster's own name). Before that, a request routed to it would fail (503,
        no cluster)."""
        if watch is conn.watches.get(types.CLUSTER):
            if sequencing.routes_taken(conn, config):
                waiting: set[str] = set()
            else:
                waiting = watch.retiring | set(removed)
        elif watch is conn.watches.get(types.ENDPOINT):
            clusters = conn.watches.get(types.CLUSTER)
            waiting = (watch.retiring | set(removed)) & (clusters.retiring if clusters else set())
        else:
            return removed
        known = watch.delta.known
        candidates = {*removed, *(n for n in watch.retiring if n not in versions)}
        watch.retiring = {n for n in waiting if n in known and n not in versions}
        return sorted(candidates - watch.retiring)

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
        config = self._config_for(conn.proxy)
        resources = config.get(type_url) or _none(type_url)
        first = first or watch.held_answer
        unchanged = resources.version == watch.sent_version
        if unchanged and not (holdings.resync or holdings.resend or watch.retiring):
            return []
        if type_url in sequencing.ROUTING and sequencing.hold_routes(
            conn, watch, config, first, self._wake_later
        ):
            return []
        watch.held_answer = False
        if holdings.rejected and resources.version != holdings.rejected_at:
            holdings.rejected.clear()  # the config changed: try them again
        versions = self._versions.of(resources)
        if holdings.basis is not None and not (holdings.resync or holdings.resend):
            changed = self._changed_since(type_url, holdings.basis, resources.items)
            updated, removed = _diff_changed(watch, versions, changed)
        else:
            updated, removed = _diff(watch, versions)
        if holdings.rejected:
            updated = [n for n in updated if n not in holdings.rejected]
        removed = self._removable(conn, watch, config, versions, removed)
        # With names left out, `known` is not in line with these resources.
        holdings.basis = None if holdings.rejected else resources.items
        holdings.resync = False
        holdings.resend.clear()
        holdings.asked.clear()
        if not (updated or removed or first):
            if watch.status == "SYNCED":
                watch.acked_version = resources.version
            watch.sent_version = resources.version
            return []
        nonce = self._next_nonce()
        # Each version looked up once: thousands per proxy on a full push.
        sent: dict[str, str | None] = {n: versions[n] for n in updated}
        holdings.known.update(sent)  # type: ignore[arg-type]  # updated names: versions only
        for name in removed:
            holdings.known.pop(name, None)
            sent[name] = None
        holdings.in_flight = sent
        holdings.whole = not holdings.rejected
        if holdings.claimed:
            holdings.claimed.difference_update(sent)
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


def _none(type_url: str) -> Resources:
    return Resources.of(type_url, [])


def _refused(holdings: Holdings, sent: Mapping[str, str | None], message: str, at: str) -> None:
    """After a NACK: Envoy may hold, of each name the response touched, what it had or what
    was sent. The resources its error names it refused; if it names none, any may be."""
    for name in sent:
        holdings.known[name] = UNSURE
    updated = [n for n, version in sent.items() if version is not None]
    named = [n for n in updated if _names(message, n)]
    if holdings.rejected_at != at:
        holdings.rejected.clear()
    holdings.rejected.update(named or updated)
    holdings.rejected_at = at
    holdings.basis = None
    # Send again at once what was not refused, so that Envoy records it.
    holdings.resync = True


def _names(message: str, name: str) -> bool:
    """Whether Envoy's error message names this resource (as `name: why`, or quoted)."""
    return re.search(rf"(?:^|[\s,'\"(]){re.escape(name)}(?=$|[\s,:'\")])", message) is not None


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
        holdings.rejected.discard(name)
        watch.retiring.discard(name)
        watch.warming.discard(name)


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
            watch.warming.add(eds_name)
