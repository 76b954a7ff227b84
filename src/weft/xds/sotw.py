"""State-of-the-world ADS: every response of a type carries all of its resources (those
asked for by name, when names are given), under one version for the type. A change reaches
a proxy make before break (weft.xds.sequencing): clusters the proxy no longer needs stay in
its cluster responses until it has taken the routes that stopped naming them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse as Response
from google.protobuf import any_pb2

from weft.snapshot.proxy import Proxy
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import sequencing, types
from weft.xds.connection import Connection
from weft.xds.generate import Resources
from weft.xds.resource_versions import ResourceVersions
from weft.xds.subscription import Received, receive, response

log = logging.getLogger("weft.xds")


class SotwAds:
    """The state-of-the-world protocol for one server: turns requests and pushes into
    responses."""

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

    def on_request(self, conn: Connection, request: Request) -> list[Response]:
        type_url = request.type_url
        watch = conn.watch(type_url)
        received = receive(watch, request)
        if received is Received.NACK:
            self._metrics.rejects.labels(types.short_name(type_url)).inc()
            log.warning(
                "%s rejected %s version %s: %s (it keeps its last good config)",
                conn.proxy.id, types.short_name(type_url), watch.sent_version, watch.nack,
            )  # fmt: skip
            if type_url == types.CLUSTER:
                # It cannot be told which clusters it took: routes wait for none of them.
                conn.watch(types.ENDPOINT).warming.clear()
        if received is Received.ACK and type_url == types.ENDPOINT:
            # What it accepted was sent for the names it asks for now (or for all).
            if watch.names:
                watch.warming.difference_update(watch.names)
            else:
                watch.warming.clear()
        if received is Received.SUPERSEDED:
            return []
        responses = self._respond(conn, type_url, force=True) if received is Received.ASK else []
        return responses + self._next_steps(conn)

    def on_push(self, conn: Connection) -> list[Response]:
        """Every type that changed, in push order; a cluster change is followed by EDS."""
        responses: list[Response] = []
        for type_url in types.PUSH_ORDER:
            watch = conn.watches.get(type_url)
            if watch is not None and watch.requested and type_url != types.ENDPOINT:
                responses += self._respond(conn, type_url, force=False)
            if type_url == types.CLUSTER:
                responses += self._endpoints(conn, clusters_sent=bool(responses))
        return responses + self._next_steps(conn)

    def _endpoints(self, conn: Connection, clusters_sent: bool) -> list[Response]:
        """EDS; always after CDS, as a changed EDS cluster waits for its endpoints again."""
        watch = conn.watches.get(types.ENDPOINT)
        if watch is None or not watch.requested:
            return []
        return self._respond(conn, types.ENDPOINT, force=clusters_sent)

    def _next_steps(self, conn: Connection) -> list[Response]:
        """Listeners and routes that waited for clusters to warm, and clusters kept for routes
        the proxy no longer holds, if either may go now."""
        responses: list[Response] = []
        for type_url in sequencing.held(conn):
            responses += self._respond(conn, type_url, force=False)
        clusters = conn.watches.get(types.CLUSTER)
        if clusters is not None and clusters.retiring:
            sent = self._respond(conn, types.CLUSTER, force=False)
            responses += sent + self._endpoints(conn, clusters_sent=bool(sent))
        return responses

    def _respond(self, conn: Connection, type_url: str, force: bool) -> list[Response]:
        """The type's current resources, if they are not what was last sent (or if `force`)."""
        started = time.monotonic()
        config = self._config_for(conn.proxy)
        resources = config.get(type_url) or Resources.of(type_url, [])
        watch = conn.watch(type_url)
        force = force or watch.held_answer
        items = resources.items
        kept: dict[str, any_pb2.Any] = {}
        if type_url == types.CLUSTER and not sequencing.routes_taken(conn, config):
            kept = sequencing.kept(items, watch.sent_items, watch.names)
        if not force and watch.sent_version == resources.version and kept.keys() == watch.retiring:
            return []
        if type_url in sequencing.ROUTING and sequencing.hold_routes(
            conn, watch, config, force, self._wake_later
        ):
            return []
        watch.held_answer = False
        if watch.names:  # asked for by name (EDS and RDS always are): only those
            items = {n: r for n, r in items.items() if n in watch.names}
        version_info = resources.version
        if type_url == types.CLUSTER:
            self._clusters_sent(conn, items, watch.sent_items)
            if kept:
                items = {**items, **kept}
                version_info = Resources.of_packed(type_url, items).version
            watch.retiring = set(kept)
            watch.sent_items = items
        nonce = self._next_nonce()
        sent = response(watch, type_url, resources.version, items.values(), nonce, version_info)
        self._metrics.sent(types.short_name(type_url), time.monotonic() - started)
        return [sent]

    def _clusters_sent(
        self, conn: Connection, items: Mapping[str, any_pb2.Any], before: Mapping[str, any_pb2.Any]
    ) -> None:
        """Routes wait for the endpoints of clusters new or changed since the last response."""
        changed = [p for n, p in items.items() if before.get(n) is not p]
        sequencing.warming(conn, (self._versions.eds_name(p) for p in changed))
