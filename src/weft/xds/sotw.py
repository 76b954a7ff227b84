"""State-of-the-world ADS: every response of a type carries all of its resources (those
asked for by name, when names are given), under one version for the type."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse as Response

from weft.snapshot.proxy import Proxy
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import types
from weft.xds.connection import Connection
from weft.xds.generate import Resources
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
    ) -> None:
        self._config_for = config_for
        self._next_nonce = next_nonce
        self._metrics = metrics

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
        if received is not Received.ASK:
            return []
        return self._respond(conn, type_url, force=True)

    def on_push(self, conn: Connection) -> list[Response]:
        """Every type that changed, in push order; a cluster change is followed by EDS."""
        responses: list[Response] = []
        clusters_sent = False
        for type_url in types.PUSH_ORDER:
            watch = conn.watches.get(type_url)
            if watch is None or not watch.requested:
                continue
            # An EDS cluster changed by CDS waits for EDS: always follow CDS with EDS.
            force = type_url == types.ENDPOINT and clusters_sent
            sent = self._respond(conn, type_url, force=force)
            responses += sent
            clusters_sent = clusters_sent or (bool(sent) and type_url == types.CLUSTER)
        return responses

    def _respond(self, conn: Connection, type_url: str, force: bool) -> list[Response]:
        """The type's current resources, if they are not what was last sent (or if `force`)."""
        started = time.monotonic()
        resources = self._config_for(conn.proxy).get(type_url) or Resources.of(type_url, [])
        watch = conn.watch(type_url)
        if not force and watch.sent_version == resources.version:
            return []
        items = resources.items
        if watch.names:  # asked for by name (EDS and RDS always are): only those
            items = {n: r for n, r in items.items() if n in watch.names}
        sent = response(watch, type_url, resources.version, items.values(), self._next_nonce())
        self._metrics.sent(types.short_name(type_url), time.monotonic() - started)
        return [sent]
