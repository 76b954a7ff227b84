"""Make before break: the order in which a change reaches one proxy, as Envoy's xDS guidance
has it, for both protocols.

Envoy does not warm routes. A route naming a cluster Envoy lacks, or one still waiting for its
endpoints, fails requests (503, no cluster); so does a cluster removed while a route Envoy
holds still names it. So a change goes out in three steps: clusters and their endpoints;
then listeners and routes, once the proxy has taken those; then the removal of clusters that
no route names any more, once it has taken the routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from google.protobuf import any_pb2

from weft.xds import types
from weft.xds.connection import Connection, WatchState
from weft.xds.generate import Resources

log = logging.getLogger("weft.xds")

ROUTING = (types.LISTENER, types.ROUTE)
# A bound on waiting for clusters to warm (in the normal course a few milliseconds): past it,
# listeners and routes go anyway rather than never.
HOLD_LIMIT_S = 2.0

WakeLater = Callable[[Connection, float], None]


def warming(conn: Connection, eds_names: Iterable[str | None]) -> None:
    """Clusters with these EDS names were just sent: routes wait for their endpoints."""
    endpoints = conn.watch(types.ENDPOINT)
    endpoints.warming.update(n for n in eds_names if n is not None)


def clusters_warm(conn: Connection, config: Mapping[str, Resources]) -> bool:
    """Whether the proxy has taken the current clusters and the endpoints of those just sent:
    then routes may name any of them."""
    clusters = conn.watches.get(types.CLUSTER)
    if clusters is None or not clusters.requested:
        return True
    current = config.get(types.CLUSTER)
    if clusters.awaiting or (current is not None and clusters.sent_version != current.version):
        return False
    endpoints = conn.watches.get(types.ENDPOINT)
    if endpoints is None or not endpoints.warming:
        return True
    # Endpoints of clusters gone again meanwhile are never coming.
    assignments = config.get(types.ENDPOINT)
    endpoints.warming.intersection_update(assignments.items if assignments else ())
    return not endpoints.warming


def routes_taken(conn: Connection, config: Mapping[str, Resources]) -> bool:
    """Whether the proxy has accepted the current listeners and routes (of those it asked
    for): then no route it holds names a cluster the current config lacks."""
    for type_url in ROUTING:
        watch = conn.watches.get(type_url)
        if watch is None or not watch.requested:
            continue
        current = config.get(type_url)
        if (
            watch.awaiting
            or watch.nack is not None
            or watch.acked_version != watch.sent_version
            or watch.sent_version != (current.version if current is not None else "")
        ):
            return False
    return True


def hold_routes(
    conn: Connection,
    watch: WatchState,
    config: Mapping[str, Resources],
    answer: bool,
    wake_later: WakeLater,
) -> bool:
    """Whether a listener or route response must wait for clusters to warm. `answer`: it
    answers a request, so it must go even if nothing changed meanwhile."""
    now = time.monotonic()
    expired = watch.held_since is not None and now - watch.held_since > HOLD_LIMIT_S
    if expired:
        log.warning(
            "%s has not taken its new clusters and their endpoints in %.0f s; sending its "
            "listeners and routes anyway", conn.proxy.id, HOLD_LIMIT_S,
        )  # fmt: skip
    if expired or clusters_warm(conn, config):
        watch.held_since = None
        return False
    if watch.held_since is None:
        watch.held_since = now
        wake_later(conn, HOLD_LIMIT_S)
    watch.held_answer = watch.held_answer or answer
    return True


def held(conn: Connection) -> list[str]:
    """The listener and route types whose responses wait, in push order."""
    return [
        t for t in ROUTING if (w := conn.watches.get(t)) is not None and w.held_since is not None
    ]


def kept(
    items: Mapping[str, any_pb2.Any], before: Mapping[str, any_pb2.Any], names: frozenset[str]
) -> dict[str, any_pb2.Any]:
    """State of the world: the resources last sent that `items` lacks (and the proxy still
    asks for), to be sent with them until the proxy has taken its new routes."""
    return {n: r for n, r in before.items() if n not in items and (not names or n in names)}
