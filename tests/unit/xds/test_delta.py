"""Delta (incremental) ADS as Envoy's delta client sees it: per-resource versions,
subscriptions, only what changed, ACK/NACK, and reconnects that resend nothing unchanged.

Each test drives `DeltaAggregatedResources` directly over one stream it controls.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import Any, cast

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Request
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse as Response
from google.rpc import status_pb2

from tests.unit.xds.conftest import bookinfo_registry
from tests.unit.xds.test_ads_state import (
    DEADLINE,
    IDENTITY,
    REVIEWS,
    Aborted,
    FakeContext,
    config,
    node,
    rejects,
    renamed,
    snapshot,
    subset_clusters,
    with_reviews_policy,
)
from weft.agent.bootstrap import SidecarIdentity
from weft.api import IstioObject
from weft.registry.local import Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.snapshot import Snapshot
from weft.xds import names, types
from weft.xds.connection import Connection
from weft.xds.server import AdsServer

# A type Weft serves nothing of; subscribing a fresh name of it is answered at once ("does not
# exist"), so its answer marks that everything sent before it was handled.
PROBE = types.SECRET
REVIEWS_CLUSTERS = sorted(f"outbound|9080|{s}|{REVIEWS}" for s in ("", "v1", "v2", "v3"))
RATINGS = "ratings.default.svc.cluster.local"


class DeltaStream:
    """One delta ADS stream: requests go in through a queue, responses come out."""

    def __init__(self, server: AdsServer, identity: SidecarIdentity = IDENTITY,
                 send_node: bool = True) -> None:  # fmt: skip
        self.server = server
        self.identity = identity
        self._requests: asyncio.Queue[Request | None] = asyncio.Queue()
        self._responses = cast(
            AsyncGenerator[Response, None],
            server.DeltaAggregatedResources(self._iterate(), FakeContext()),
        )
        self._node_pending = send_node
        self._probes = 0

    async def _iterate(self) -> AsyncIterator[Request]:
        while (request := await self._requests.get()) is not None:
            yield request

    def send(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        initial: Mapping[str, str] | None = None,
        answering: Response | None = None,
        error: str | None = None,
    ) -> None:
        request = Request(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=dict(initial or {}),
        )
        if self._node_pending:  # set_node_on_first_message_only, as Weft's bootstrap says
            request.node.CopyFrom(node(self.identity))
            self._node_pending = False
        if answering is not None:
            request.response_nonce = answering.nonce
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put_nowait(request)

    def ack(self, response: Response) -> None:
        self.send(response.type_url, answering=response)

    async def recv(self) -> Response:
        return await asyncio.wait_for(anext(self._responses), DEADLINE)

    async def drain(self) -> list[Response]:
        """Every response the server sends before it answers a probe sent now."""
        self._probes += 1
        probe = f"probe-{self._probes}"
        self.send(PROBE, [probe])
        responses = []
        while (response := await self.recv()).type_url != PROBE:
            responses.append(response)
        assert list(response.removed_resources) == [probe]
        self.ack(response)
        return responses

    async def request(
        self, type_url: str, subscribe: Iterable[str] = (), initial: Mapping[str, str] | None = None
    ) -> Response:
        """Send a request, receive its answer, ACK it."""
        self.send(type_url, subscribe, initial=initial)
        response = await self.recv()
        assert response.type_url == type_url
        self.ack(response)
        return response

    async def subscribe_all(self) -> dict[str, Response]:
        """Envoy's start-up: CDS, then EDS for its EDS clusters, LDS, then RDS; each ACKed."""
        cds = await self.request(types.CLUSTER)
        eds = await self.request(types.ENDPOINT, eds_names(cds))
        lds = await self.request(types.LISTENER)
        rds = await self.request(types.ROUTE, [names.HTTP_PROXY_ROUTE])
        return {r.type_url: r for r in (cds, eds, lds, rds)}

    def connection(self) -> Connection:
        (conn,) = self.server.connections.values()
        return conn

    def status(self, type_url: str) -> dict[str, Any]:
        types_status = self.connection().status()["types"]
        assert isinstance(types_status, dict)
        found = types_status[types.short_name(type_url)]
        assert isinstance(found, dict)
        return found

    async def aclose(self) -> None:
        await self._responses.aclose()


def eds_names(cds: Response) -> list[str]:
    found = []
    for resource in cds.resources:
        cluster = cluster_pb2.Cluster()
        resource.resource.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            found.append(cluster.eds_cluster_config.service_name or cluster.name)
    return found


def sent(response: Response) -> list[str]:
    return sorted(r.name for r in response.resources)


def held(responses: Iterable[Response]) -> dict[str, str]:
    """What a proxy holds after these responses: name -> version."""
    versions: dict[str, str] = {}
    for response in responses:
        for name in response.removed_resources:
            versions.pop(name, None)
        versions.update({r.name: r.version for r in response.resources})
    return versions


async def pushed(server: AdsServer, stream: DeltaStream, snap: Snapshot) -> list[Response]:
    """What a push of `snap` sends once every earlier request was handled; each ACKed."""
    assert await stream.drain() == []
    server.push(snap)
    responses = await stream.drain()
    for response in responses:
        stream.ack(response)
    return responses


def short(responses: Iterable[Response]) -> list[str]:
    return [types.short_name(r.type_url) for r in responses]


async def settle(stream: DeltaStream) -> list[Response]:
    """Everything the server sends until it has nothing more, answered as Envoy answers:
    each response ACKed and, after clusters, the endpoints of new EDS clusters subscribed and
    those of removed clusters unsubscribed."""
    found = []
    while responses := await stream.drain():
        for response in responses:
            found.append(response)
            stream.ack(response)
            if response.type_url == types.CLUSTER:
                have = stream.connection().watches[types.ENDPOINT].names
                new = [n for n in eds_names(response) if n not in have]
                gone = [n for n in response.removed_resources if n in have]
                if new or gone:
                    stream.send(types.ENDPOINT, new, unsubscribe=gone)
    return found


def without_ratings(version: int = 2, objects: list[IstioObject] | None = None) -> Snapshot:
    registry = bookinfo_registry()
    registry.deregister("default", "ratings-v1")
    return snapshot(version, objects, registry=registry)


@pytest.fixture
def server() -> AdsServer:
    return AdsServer(snapshot(1))


@pytest.fixture
async def stream(server: AdsServer) -> AsyncIterator[DeltaStream]:
    s = DeltaStream(server)
    try:
        yield s
    finally:
        await s.aclose()


# --- first request, ACK, NACK -------------------------------------------------------------------


async def test_first_request_gets_every_resource_with_its_own_version(
    server: AdsServer, stream: DeltaStream
) -> None:
    stream.send(types.CLUSTER)
    response = await stream.recv()
    assert response.type_url == types.CLUSTER and response.nonce
    config = server.config_for(stream.connection().proxy)[types.CLUSTER]
    assert sent(response) == sorted(config.items)
    assert response.system_version_info == config.version
    for resource in response.resources:
        assert resource.resource == config.items[resource.name]
        assert resource.version == hashlib.sha256(resource.resource.value).hexdigest()[:16]
    assert len({r.version for r in response.resources}) == len(response.resources)
    status = stream.connection().status()
    assert status["protocol"] == "delta"
    assert stream.status(types.CLUSTER)["status"] == "STALE"  # sent, not yet ACKed
    assert stream.status(types.LISTENER)["status"] == "NOT SENT"


async def test_ack_is_not_answered_and_marks_synced(stream: DeltaStream) -> None:
    cds = await stream.request(types.CLUSTER)
    assert await stream.drain() == []
    status = stream.status(types.CLUSTER)
    assert status["status"] == "SYNCED"
    assert status["sent"] == status["acked"] == cds.system_version_info
    assert status["resources_sent"] == len(cds.resources)


async def test_nack_is_recorded_and_the_same_config_is_not_resent(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, with_reviews_policy()))
    cds, eds = await stream.drain()
    message = "Proto constraint validation failed: bad load balancer"
    stream.send(types.CLUSTER, answering=cds, error=message)
    stream.ack(eds)
    assert await stream.drain() == []
    status = stream.status(types.CLUSTER)
    assert (status["status"], status["nack"]) == ("STALE", message)
    assert rejects(server, types.CLUSTER) == 1.0 and rejects(server, types.ENDPOINT) == 0.0
    # Envoy keeps its last good config; the same config again is not sent again.
    assert await pushed(server, stream, snapshot(3, with_reviews_policy())) == []
    assert stream.status(types.CLUSTER)["nack"] == message


async def test_a_change_after_a_nack_resends_what_was_rejected(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, with_reviews_policy()))
    cds, eds = await stream.drain()
    stream.send(types.CLUSTER, answering=cds, error="bad cluster")
    stream.ack(eds)
    # An unrelated cluster change: the rejected clusters are still not in Envoy, so they go too.
    assert await stream.drain() == []
    server.push(without_ratings(3, with_reviews_policy()))
    responses = await settle(stream)
    again = responses[0]
    assert again.type_url == types.CLUSTER
    assert set(REVIEWS_CLUSTERS) <= set(sent(again))
    assert f"outbound|9080||{RATINGS}" in {
        n for r in responses if r.type_url == types.CLUSTER for n in r.removed_resources
    }
    status = stream.status(types.CLUSTER)
    assert (status["status"], status["nack"]) == ("SYNCED", None)


REVIEWS_WITHOUT_SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"""


def without_subsets() -> list[IstioObject]:
    """destination-rule-all.yaml with reviews' rule replaced: its subset clusters go."""
    rules = [o for o in config("destination-rule-all.yaml") if o.metadata.name != "reviews"]
    return rules + config(extra=[REVIEWS_WITHOUT_SUBSETS])


def refused(name: str) -> str:
    """Envoy's message when it refuses one cluster of a CDS response."""
    return f"Error adding/updating cluster(s) {name}: cluster manager: no, '{name}' is bad"


async def test_after_a_nack_the_removals_it_applied_are_recorded(
    server: AdsServer, stream: DeltaStream
) -> None:
    """Envoy applies a NACKed response's removals but does not record them; sent again and
    accepted, Envoy's record and the server's agree, and restoring the subsets sends them."""
    await stream.subscribe_all()
    assert await stream.drain() == []
    server.push(snapshot(2, without_subsets()))
    cds, *others = await stream.drain()
    for response in others:
        stream.ack(response)
    subsets = [n for n in REVIEWS_CLUSTERS if "||" not in n]
    default = f"outbound|9080||{REVIEWS}"
    assert sent(cds) == [default] and sorted(cds.removed_resources) == subsets
    stream.send(types.CLUSTER, answering=cds, error=refused(default))
    again = await stream.recv()
    # At once: the removals again, not the refused cluster.
    assert (sent(again), sorted(again.removed_resources)) == ([], subsets)
    stream.ack(again)
    await stream.drain()
    status = stream.status(types.CLUSTER)
    assert (status["status"], status["nack"]) == ("STALE", refused(default))
    assert await pushed(server, stream, snapshot(3, without_subsets())) == []
    # The good rule again: the subset clusters come back, and the default cluster as it was.
    cds, _ = await pushed(server, stream, snapshot(4))
    assert sent(cds) == REVIEWS_CLUSTERS and not cds.removed_resources
    await stream.drain()
    assert stream.status(types.CLUSTER)["status"] == "SYNCED"


async def test_after_a_nack_the_resources_it_does_not_name_are_sent_again(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, with_reviews_policy()))
    cds, _ = await stream.drain()
    v2 = f"outbound|9080|v2|{REVIEWS}"
    stream.send(types.CLUSTER, answering=cds, error=refused(v2))
    again = await stream.recv()
    assert sent(again) == [n for n in REVIEWS_CLUSTERS if n != v2]
    stream.ack(again)
    await stream.drain()
    assert stream.status(types.CLUSTER)["status"] == "STALE"  # v2 is not what it should be
    assert await pushed(server, stream, snapshot(3, with_reviews_policy())) == []


async def test_a_refused_resend_is_not_sent_again(stream: DeltaStream, server: AdsServer) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, with_reviews_policy()))
    cds, _ = await stream.drain()
    stream.send(types.CLUSTER, answering=cds, error=refused(f"outbound|9080|v2|{REVIEWS}"))
    again = await stream.recv()
    stream.send(types.CLUSTER, answering=again, error="still bad")
    # Nothing more is tried until the config changes.
    assert await stream.drain() == []
    assert stream.status(types.CLUSTER)["nack"] == "still bad"
    assert rejects(server, types.CLUSTER) == 2.0


async def test_reconnect_sends_declared_clusters_envoy_has_no_endpoints_for(
    server: AdsServer,
) -> None:
    """After a NACKed response Envoy declares clusters it removed; it subscribes endpoints
    only for those it has."""
    before = DeltaStream(server)
    try:
        cds = await before.request(types.CLUSTER)
        had = held([cds])
        had_endpoints = held([await before.request(types.ENDPOINT, eds_names(cds))])
    finally:
        await before.aclose()
    after = DeltaStream(AdsServer(snapshot(1)))
    subsets = [n for n in REVIEWS_CLUSTERS if "||" not in n]
    try:
        first = await after.request(types.CLUSTER, initial=had)
        assert not first.resources and not first.removed_resources
        endpoints = {n: v for n, v in had_endpoints.items() if n not in subsets}
        after.send(types.ENDPOINT, list(endpoints), initial=endpoints)
        cds, eds = await after.recv(), await after.recv()
        assert (cds.type_url, sent(cds)) == (types.CLUSTER, subsets)
        assert eds.type_url == types.ENDPOINT and not eds.resources
        after.ack(cds)
        after.ack(eds)
        # Envoy, having the clusters, subscribes their endpoints.
        assert sent(await after.request(types.ENDPOINT, subsets)) == subsets
        await after.drain()
        assert after.status(types.CLUSTER)["status"] == "SYNCED"
    finally:
        await after.aclose()


async def test_stale_nonce_is_ignored(server: AdsServer, stream: DeltaStream) -> None:
    await stream.subscribe_all()
    (rds,) = await pushed(
        server,
        stream,
        snapshot(2, config("destination-rule-all.yaml", "virtual-service-all-v1.yaml")),
    )
    assert await stream.drain() == []
    # A late NACK of a response already answered changes nothing.
    stream.send(types.ROUTE, answering=rds, error="late problem")
    assert await stream.drain() == []
    assert stream.status(types.ROUTE)["nack"] is None
    assert rejects(server, types.ROUTE) == 0.0
    assert stream.status(types.ROUTE)["status"] == "SYNCED"


async def test_first_request_without_a_node_id_is_refused(server: AdsServer) -> None:
    stream = DeltaStream(server, send_node=False)
    stream.send(types.CLUSTER)
    try:
        with pytest.raises(Aborted) as caught:
            await stream.recv()
    finally:
        await stream.aclose()
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert server.connections == {}


# --- pushes ------------------------------------------------------------------------------------


async def test_push_of_the_same_content_sends_nothing(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    assert await pushed(server, stream, snapshot(2)) == []
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_cluster_change_sends_only_changed_clusters_then_their_endpoints(
    server: AdsServer, stream: DeltaStream
) -> None:
    before = await stream.subscribe_all()
    cds, eds = await pushed(server, stream, snapshot(2, with_reviews_policy()))
    assert (cds.type_url, eds.type_url) == (types.CLUSTER, types.ENDPOINT)
    assert sent(cds) == REVIEWS_CLUSTERS and not cds.removed_resources
    # The endpoints did not change, yet they are resent so Envoy's clusters stop warming.
    assert sent(eds) == REVIEWS_CLUSTERS
    assert held([eds]).items() <= held([before[types.ENDPOINT]]).items()
    await stream.drain()
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_removed_service_sends_removed_names(server: AdsServer, stream: DeltaStream) -> None:
    before = await stream.subscribe_all()
    # Listeners do not depend on services; ratings' route goes with its virtual host, first.
    (rds,) = await pushed(server, stream, without_ratings())
    assert sent(rds) == [names.HTTP_PROXY_ROUTE]
    # The route taken, its clusters go, then their endpoints.
    cds, eds = await stream.drain()
    gone = sorted(n for n in held([before[types.CLUSTER]]) if RATINGS in n)
    assert gone and sorted(cds.removed_resources) == gone and not cds.resources
    assert sorted(eds.removed_resources) == sorted(
        set(gone) & set(eds_names(before[types.CLUSTER]))
    )
    stream.ack(cds)
    stream.ack(eds)
    await stream.drain()
    assert (
        stream.status(types.CLUSTER)["sent"]
        == server.config_for(stream.connection().proxy)[types.CLUSTER].version
    )
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_new_endpoint_sends_only_that_clusters_endpoints(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    registry = bookinfo_registry()
    registry.register(
        Workload(
            name="reviews-v1-b",
            namespace="default",
            service="reviews",
            address="127.0.0.1",
            ports=(WorkloadPort(9080, 20007),),
            labels=frozen_labels({"app": "reviews", "version": "v1"}),
        )
    )
    (eds,) = await pushed(server, stream, snapshot(2, registry=registry))
    assert eds.type_url == types.ENDPOINT
    assert sent(eds) == sorted(f"outbound|9080|{s}|{REVIEWS}" for s in ("", "v1"))


async def test_a_change_waits_for_the_answer_to_the_previous_response(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    vs = config("destination-rule-all.yaml", "virtual-service-all-v1.yaml")
    server.push(snapshot(2, vs))
    (first,) = await stream.drain()
    server.push(
        snapshot(3, config("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"))
    )
    assert await stream.drain() == []  # RDS is unanswered: nothing more of it yet
    stream.ack(first)
    second = await stream.recv()
    assert second.type_url == types.ROUTE and second.nonce != first.nonce
    assert second.system_version_info != first.system_version_info


# --- subscriptions -----------------------------------------------------------------------------


async def test_endpoints_follow_subscribe_and_unsubscribe(
    server: AdsServer, stream: DeltaStream
) -> None:
    v1, v2 = (f"outbound|9080|{s}|{REVIEWS}" for s in ("v1", "v2"))
    first = await stream.request(types.ENDPOINT, [v1])
    assert sent(first) == [v1]
    stream.send(types.ENDPOINT, [v2])
    second = await stream.recv()
    assert sent(second) == [v2]  # only the new name, not v1 again
    stream.ack(second)
    # Unsubscribing is not answered, and changes to that name are no longer sent.
    stream.send(types.ENDPOINT, unsubscribe=[v2])
    assert await stream.drain() == []
    assert stream.connection().watches[types.ENDPOINT].names == {v1}
    # Subscribing again sends it again, even unchanged.
    assert sent(await stream.request(types.ENDPOINT, [v2])) == [v2]


async def test_names_asked_for_while_a_response_is_unanswered_are_sent_after_it(
    stream: DeltaStream,
) -> None:
    v1, v2 = (f"outbound|9080|{s}|{REVIEWS}" for s in ("v1", "v2"))
    missing = "outbound|9080||nosuch.default.svc.cluster.local"
    stream.send(types.ENDPOINT, [v1])
    first = await stream.recv()
    stream.send(types.ENDPOINT, [v2, missing])
    assert await stream.drain() == []
    stream.ack(first)
    second = await stream.recv()
    assert sent(second) == [v2]
    assert list(second.removed_resources) == [missing]


async def test_subscribing_a_missing_resource_is_answered_as_removed(stream: DeltaStream) -> None:
    missing = "outbound|9080||nosuch.default.svc.cluster.local"
    response = await stream.request(types.ENDPOINT, [missing])
    assert not response.resources
    assert list(response.removed_resources) == [missing]


async def test_explicit_wildcard_gets_every_listener(
    server: AdsServer, stream: DeltaStream
) -> None:
    lds = await stream.request(types.LISTENER, ["*"])
    assert sent(lds) == sorted(server.config_for(stream.connection().proxy)[types.LISTENER].items)


async def test_listeners_by_name_get_only_those(stream: DeltaStream) -> None:
    lds = await stream.request(types.LISTENER, [names.HTTP_PROXY_LISTENER])
    assert sent(lds) == [names.HTTP_PROXY_LISTENER]


# --- reconnects --------------------------------------------------------------------------------


async def test_reconnect_with_current_versions_resends_nothing(server: AdsServer) -> None:
    before = DeltaStream(server)
    try:
        had = await before.subscribe_all()
    finally:
        await before.aclose()
    restarted = AdsServer(snapshot(1))
    after = DeltaStream(restarted)
    try:
        for type_url in types.PUSH_ORDER:
            subscribe = [] if type_url in (types.CLUSTER, types.LISTENER) else held([had[type_url]])
            response = await after.request(type_url, subscribe, initial=held([had[type_url]]))
            # Answered (Envoy waits for it), but with nothing in it.
            assert not response.resources and not response.removed_resources
        await after.drain()
        for type_url in types.PUSH_ORDER:
            status = after.status(type_url)
            assert (status["status"], status["resources_sent"]) == ("SYNCED", 0)
    finally:
        await after.aclose()


async def test_reconnect_after_changes_sends_only_the_difference(server: AdsServer) -> None:
    before = DeltaStream(server)
    try:
        cds = await before.request(types.CLUSTER)
        had = held([cds])
        had_endpoints = held([await before.request(types.ENDPOINT, eds_names(cds))])
    finally:
        await before.aclose()
    # While Envoy was away: reviews' clusters changed, and it holds a cluster that is gone.
    restarted = AdsServer(snapshot(1, with_reviews_policy()))
    after = DeltaStream(restarted)
    try:
        cds = await after.request(types.CLUSTER, initial={**had, "outbound|1|x|gone": "0"})
        assert sent(cds) == REVIEWS_CLUSTERS
        assert list(cds.removed_resources) == ["outbound|1|x|gone"]
        # Asked for endpoints it already holds, it still gets those of the changed clusters.
        eds = await after.request(types.ENDPOINT, list(had_endpoints), initial=had_endpoints)
        assert sent(eds) == REVIEWS_CLUSTERS
        assert await after.drain() == []
    finally:
        await after.aclose()


async def test_sotw_and_delta_proxies_share_one_server(server: AdsServer) -> None:
    from tests.unit.xds.test_ads_state import Stream

    reviews = SidecarIdentity(
        workload="reviews-v1", namespace="default", service="reviews",
        labels={"app": "reviews", "version": "v1"},
    )  # fmt: skip
    sotw, delta = Stream(server, reviews), DeltaStream(server)
    try:
        await sotw.request(types.CLUSTER)
        await delta.request(types.CLUSTER)
        protocols = {c.proxy.workload: c.status()["protocol"] for c in server.connections.values()}
        assert protocols == {"reviews-v1": "sotw", "productpage-v1": "delta"}
        server.push(snapshot(2, with_reviews_policy()))
        assert short(await delta.drain()) == ["CDS"]  # EDS not asked for on this stream
        assert short(await sotw.drain()) == ["CDS"]
    finally:
        await sotw.aclose()
        await delta.aclose()


async def test_what_the_server_remembers_per_resource_does_not_grow_with_pushes(
    server: AdsServer, stream: DeltaStream
) -> None:
    """Versions, delta resources and compared configs are remembered per packed resource;
    those of configs no proxy holds any more are forgotten within two pushes."""
    await stream.subscribe_all()
    delta = server._delta
    sizes = []
    for version in range(2, 22):
        # Each push changes reviews' endpoints (one more instance each time) and routes.
        registry = bookinfo_registry()
        registry.register(
            Workload(
                name=f"reviews-extra-{version}",
                namespace="default",
                service="reviews",
                address="127.0.0.1",
                ports=(WorkloadPort(9080, 21000 + version),),
                labels=frozen_labels({"app": "reviews", "version": "v1"}),
            )
        )
        objects = with_reviews_policy() if version % 2 else None
        responses = await pushed(server, stream, snapshot(version, objects, registry=registry))
        assert responses, version
        sizes.append(len(delta._versions._versions) + len(delta._changes))
    assert max(sizes[5:]) <= 2 * min(sizes[5:]), sizes


# --- make before break -------------------------------------------------------------------------


async def test_routes_wait_for_new_clusters_and_old_clusters_for_the_routes(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, renamed("a", "b")))
    await settle(stream)
    server.push(snapshot(3, renamed("c", "d")))
    cds, *others = await stream.drain()
    # New clusters first; nothing removed, no route yet.
    assert set(sent(cds)) == subset_clusters("c", "d") and not cds.removed_resources
    assert types.ROUTE not in short(others)
    for response in (cds, *others):
        stream.ack(response)
    # Routes wait until Envoy has the new clusters' endpoints.
    assert await stream.drain() == []
    assert sorted(sent(await stream.request(types.ENDPOINT, eds_names(cds)))) == sorted(
        subset_clusters("c", "d")
    )
    (rds,) = await stream.drain()
    assert rds.type_url == types.ROUTE
    assert stream.status(types.CLUSTER)["status"] == "STALE"  # holds clusters it should not
    stream.ack(rds)
    # Routes taken: the old clusters go, then their endpoints.
    cds, eds = await stream.drain()
    assert set(cds.removed_resources) == subset_clusters("a", "b") and not cds.resources
    assert set(eds.removed_resources) == subset_clusters("a", "b")
    stream.ack(cds)
    stream.ack(eds)
    await stream.drain()
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_old_clusters_stay_while_envoy_refuses_the_new_routes(
    server: AdsServer, stream: DeltaStream
) -> None:
    await stream.subscribe_all()
    server.push(snapshot(2, renamed("a", "b")))
    await settle(stream)
    server.push(snapshot(3, renamed("c", "d")))
    rds = None
    while rds is None:
        responses = await stream.drain()
        assert responses, "the routes never came"
        for response in responses:
            if response.type_url == types.ROUTE:
                rds = response
                continue
            stream.ack(response)
            if response.type_url == types.CLUSTER:
                stream.send(types.ENDPOINT, eds_names(response))
    stream.send(types.ROUTE, answering=rds, error="no")
    assert await settle(stream) == []
    watch = stream.connection().watches[types.CLUSTER]
    assert subset_clusters("a", "b") <= watch.delta.known.keys()
    assert stream.status(types.CLUSTER)["status"] == "STALE"
