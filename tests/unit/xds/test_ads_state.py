"""The ADS state machine as Envoy sees it: responses, ACK/NACK, pushes, versions.

Each test drives `StreamAggregatedResources` directly with requests it controls, the way
Envoy's ADS client would send them over one gRPC stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any, NoReturn, cast

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import status_pb2

import weft
from tests.unit.xds.conftest import SAMPLES, bookinfo_registry
from weft.agent.bootstrap import SidecarIdentity
from weft.api import IstioObject, load_yaml
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import InboundPort
from weft.snapshot.snapshot import Snapshot
from weft.xds import names, types
from weft.xds.connection import Connection
from weft.xds.server import AdsServer

DEADLINE = 5.0
REVIEWS = "reviews.default.svc.cluster.local"
# Envoy may ask for any type on ADS; one Weft serves nothing of is still answered (empty). A
# request for it is a marker: its answer means everything sent before it was handled.
PROBE = types.SECRET

IDENTITY = SidecarIdentity(
    workload="productpage-v1",
    namespace="default",
    service="productpage",
    labels={"app": "productpage", "version": "v1"},
    service_account="bookinfo-productpage",
    proxy_port=15001,
    inbound=(InboundPort(service_port=9080, inbound_port=20001, app_port=30001),),
)

TRAFFIC_POLICY = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def config(*files: str, extra: Iterable[str] = ()) -> list[IstioObject]:
    found: list[IstioObject] = []
    for name in files:
        found += load_yaml((SAMPLES / name).read_text(), name)
    for i, text in enumerate(extra):
        found += load_yaml(text, f"<test {i}>")
    return found


def with_reviews_policy() -> list[IstioObject]:
    """destination-rule-all.yaml with a load balancer on reviews: only clusters change."""
    rules = [o for o in config("destination-rule-all.yaml") if o.metadata.name != "reviews"]
    return rules + config(extra=[TRAFFIC_POLICY])


def snapshot(
    version: int, objects: list[IstioObject] | None = None, registry: LocalRegistry | None = None
) -> Snapshot:
    registry = registry or bookinfo_registry()
    if objects is None:
        objects = config("destination-rule-all.yaml")
    return build_snapshot(version, objects, registry.services(), registry.endpoints())


def node(identity: SidecarIdentity = IDENTITY) -> base_pb2.Node:
    metadata = json_format.ParseDict(identity.metadata(), struct_pb2.Struct())
    return base_pb2.Node(
        id=identity.node_id, cluster=f"{identity.service}.{identity.namespace}", metadata=metadata
    )


class Aborted(Exception):
    """What grpc.aio's `context.abort` does: end the RPC by raising."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise Aborted(code, details)


class Stream:
    """One ADS stream: requests go in through a queue, responses come out of the servicer."""

    def __init__(
        self, server: AdsServer, identity: SidecarIdentity = IDENTITY, send_node: bool = True
    ) -> None:
        self.server = server
        self.identity = identity
        self._requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        # The servicer is an async generator; typed as an iterator by the gRPC base class.
        self._responses = cast(
            AsyncGenerator[discovery_pb2.DiscoveryResponse, None],
            server.StreamAggregatedResources(self._iterate(), FakeContext()),
        )
        self._node_pending = send_node
        self.last: dict[str, discovery_pb2.DiscoveryResponse] = {}
        self.names: dict[str, list[str]] = {}  # per type, as last asked for

    async def _iterate(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    def send(
        self,
        type_url: str,
        resource_names: Iterable[str] = (),
        response: discovery_pb2.DiscoveryResponse | None = None,
        error: str | None = None,
        version_info: str | None = None,
    ) -> None:
        """A request; with `response` it answers that response (ACK, or NACK with `error`)."""
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, resource_names=list(resource_names)
        )
        self.names[type_url] = list(resource_names)
        if self._node_pending:  # set_node_on_first_message_only, as Weft's bootstrap says
            request.node.CopyFrom(node(self.identity))
            self._node_pending = False
        if response is not None:
            request.response_nonce = response.nonce
            request.version_info = response.version_info
        if version_info is not None:
            request.version_info = version_info
        if error is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put_nowait(request)

    def ack(
        self, response: discovery_pb2.DiscoveryResponse, names: Iterable[str] | None = None
    ) -> None:
        """Accept `response`, asking for the same names as before unless given others."""
        if names is None:
            names = self.names.get(response.type_url, [])
        self.send(response.type_url, names, response=response)

    async def recv(self) -> discovery_pb2.DiscoveryResponse:
        response = await asyncio.wait_for(anext(self._responses), DEADLINE)
        self.last[response.type_url] = response
        return response

    async def drain(self) -> list[discovery_pb2.DiscoveryResponse]:
        """Every response the server sends before it answers a probe sent now."""
        self.send(PROBE)
        responses = []
        while (response := await self.recv()).type_url != PROBE:
            responses.append(response)
        return responses

    async def subscribe_all(self) -> dict[str, discovery_pb2.DiscoveryResponse]:
        """Envoy's start-up: CDS, then EDS for its EDS clusters, LDS, then RDS; each ACKed."""
        cds = await self.request(types.CLUSTER)
        eds = await self.request(types.ENDPOINT, eds_names(cds))
        lds = await self.request(types.LISTENER)
        rds = await self.request(types.ROUTE, [names.HTTP_PROXY_ROUTE])
        return {r.type_url: r for r in (cds, eds, lds, rds)}

    async def request(
        self, type_url: str, resource_names: Iterable[str] = ()
    ) -> discovery_pb2.DiscoveryResponse:
        resource_names = list(resource_names)
        self.send(type_url, resource_names)
        response = await self.recv()
        assert response.type_url == type_url
        self.ack(response, resource_names)
        return response

    def connection(self) -> Connection:
        (conn,) = self.server.connections.values()
        return conn

    def status(self, type_url: str) -> dict[str, Any]:
        types_status = self.connection().status()["types"]
        assert isinstance(types_status, dict)
        found = types_status[types.short_name(type_url)]
        assert isinstance(found, dict)
        return found

    def end(self) -> None:
        self._requests.put_nowait(None)

    async def finished(self) -> bool:
        try:
            await asyncio.wait_for(anext(self._responses), DEADLINE)
        except StopAsyncIteration:
            return True
        return False

    async def aclose(self) -> None:
        await self._responses.aclose()


def eds_names(cds: discovery_pb2.DiscoveryResponse) -> list[str]:
    found = []
    for packed in cds.resources:
        cluster = cluster_pb2.Cluster()
        packed.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            found.append(cluster.eds_cluster_config.service_name or cluster.name)
    return found


def resource_names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    """Names of the resources in a response."""
    message_type = {
        types.CLUSTER: cluster_pb2.Cluster,
        types.LISTENER: listener_pb2.Listener,
        types.ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
        types.ROUTE: route_pb2.RouteConfiguration,
    }
    found = []
    for packed in response.resources:
        msg = message_type[response.type_url]()
        packed.Unpack(msg)
        found.append(getattr(msg, "cluster_name", "") or msg.name)
    return found


def rejects(server: AdsServer, type_url: str) -> float:
    # As a scraper sees it, spelled as istiod spells it: `pilot_total_xds_rejects{type="cds"}`.
    value = server.metrics.value(
        "pilot_total_xds_rejects", {"type": types.short_name(type_url).lower()}
    )
    return value or 0.0


@pytest.fixture
def server() -> AdsServer:
    return AdsServer(snapshot(1))


@pytest.fixture
async def stream(server: AdsServer) -> AsyncIterator[Stream]:
    s = Stream(server)
    try:
        yield s
    finally:
        await s.aclose()


# --- first request, ACK, NACK -------------------------------------------------------------------


async def test_first_request_is_answered_with_version_and_nonce(
    server: AdsServer, stream: Stream
) -> None:
    stream.send(types.CLUSTER)
    response = await stream.recv()
    assert response.type_url == types.CLUSTER
    assert response.version_info and response.nonce
    assert f"outbound|9080||{REVIEWS}" in resource_names(response)
    conn = stream.connection()
    assert conn.proxy.id == IDENTITY.node_id
    assert (conn.proxy.namespace, conn.proxy.workload) == ("default", "productpage-v1")
    # Sent, not yet ACKed; other types never asked for.
    assert stream.status(types.CLUSTER)["status"] == "STALE"
    assert stream.status(types.LISTENER)["status"] == "NOT SENT"


async def test_ack_is_not_answered_and_marks_synced(stream: Stream) -> None:
    stream.send(types.CLUSTER)
    response = await stream.recv()
    stream.ack(response)
    assert await stream.drain() == []
    status = stream.status(types.CLUSTER)
    assert status["status"] == "SYNCED"
    assert status["sent"] == status["acked"] == response.version_info
    assert status["nack"] is None


async def test_nack_records_envoys_message_and_counts_a_reject(
    server: AdsServer, stream: Stream
) -> None:
    stream.send(types.CLUSTER)
    response = await stream.recv()
    message = "Proto constraint validation failed: invalid regex"
    stream.send(types.CLUSTER, response=response, error=message, version_info="")
    assert await stream.drain() == []
    status = stream.status(types.CLUSTER)
    assert (status["status"], status["nack"]) == ("STALE", message)
    assert status["acked"] == ""
    assert rejects(server, types.CLUSTER) == 1.0
    assert rejects(server, types.LISTENER) == 0.0


async def test_a_fixed_push_after_a_nack_is_sent_and_its_ack_clears_the_nack(
    server: AdsServer, stream: Stream
) -> None:
    stream.send(types.CLUSTER)
    response = await stream.recv()
    stream.send(types.CLUSTER, response=response, error="bad cluster", version_info="")
    assert await stream.drain() == []
    assert stream.status(types.CLUSTER)["nack"] == "bad cluster"
    server.push(snapshot(2, with_reviews_policy()))
    (fixed,) = await stream.drain()
    assert fixed.type_url == types.CLUSTER and fixed.version_info != response.version_info
    stream.ack(fixed)
    await stream.drain()
    status = stream.status(types.CLUSTER)
    assert (status["status"], status["nack"], status["acked"]) == (
        "SYNCED",
        None,
        fixed.version_info,
    )


async def test_stale_nonce_is_ignored(server: AdsServer, stream: Stream) -> None:
    stream.send(types.CLUSTER)
    first = await stream.recv()
    server.push(snapshot(2, with_reviews_policy()))
    (second,) = await stream.drain()
    # Envoy's NACK of the first response arrives after the second was sent: superseded.
    stream.send(types.CLUSTER, response=first, error="old problem", version_info="")
    assert await stream.drain() == []
    assert stream.status(types.CLUSTER)["nack"] is None
    assert rejects(server, types.CLUSTER) == 0.0
    # ... and an ACK of the old nonce does not mark the new version synced.
    stream.ack(first)
    await stream.drain()
    assert stream.status(types.CLUSTER)["status"] == "STALE"
    stream.ack(second)
    await stream.drain()
    assert stream.status(types.CLUSTER)["status"] == "SYNCED"


async def test_request_with_new_resource_names_is_answered(stream: Stream) -> None:
    stream.send(types.LISTENER)
    wildcard = await stream.recv()
    assert sorted(resource_names(wildcard)) == sorted(
        [names.HTTP_PROXY_LISTENER, names.inbound_listener("127.0.0.1", 20001)]
    )
    # As a gRPC client does: the same ACKed nonce, now naming the one listener it wants.
    stream.send(types.LISTENER, [names.HTTP_PROXY_LISTENER], response=wildcard)
    named = await stream.recv()
    assert named.type_url == types.LISTENER and named.nonce != wildcard.nonce
    assert resource_names(named) == [names.HTTP_PROXY_LISTENER]
    stream.ack(named, [names.HTTP_PROXY_LISTENER])
    assert await stream.drain() == []
    assert stream.status(types.LISTENER)["status"] == "SYNCED"


async def test_clusters_asked_for_by_name_are_the_only_ones_sent(stream: Stream) -> None:
    wanted = f"outbound|9080|v2|{REVIEWS}"
    stream.send(types.CLUSTER, [wanted])
    assert resource_names(await stream.recv()) == [wanted]


async def test_endpoints_and_routes_asked_for_by_name_are_the_only_ones_sent(
    stream: Stream,
) -> None:
    wanted = f"outbound|9080|v2|{REVIEWS}"
    stream.send(types.ENDPOINT, [wanted])
    assert resource_names(await stream.recv()) == [wanted]
    stream.send(types.ROUTE, ["no-such-route"])
    assert resource_names(await stream.recv()) == []


async def test_first_request_without_a_node_id_is_refused(server: AdsServer) -> None:
    stream = Stream(server, send_node=False)
    stream.send(types.CLUSTER)
    try:
        with pytest.raises(Aborted) as caught:
            await stream.recv()
    finally:
        await stream.aclose()
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "node.id" in caught.value.details
    assert server.connections == {}


# --- pushes ------------------------------------------------------------------------------------


async def pushed(
    server: AdsServer, stream: Stream, snap: Snapshot
) -> list[discovery_pb2.DiscoveryResponse]:
    """What a push of `snap` sends, once every earlier request (ACKs) was handled; ACKed."""
    assert await stream.drain() == []
    server.push(snap)
    responses = await stream.drain()
    for response in responses:
        stream.ack(response)
    return responses


def short(responses: list[discovery_pb2.DiscoveryResponse]) -> list[str]:
    return [types.short_name(r.type_url) for r in responses]


async def settle(stream: Stream) -> list[discovery_pb2.DiscoveryResponse]:
    """Everything the server sends until it has nothing more, answered as Envoy answers:
    each response ACKed and, after clusters, endpoints asked for by the EDS clusters' names."""
    found = []
    while responses := await stream.drain():
        for response in responses:
            found.append(response)
            stream.ack(response)
            wanted = eds_names(response) if response.type_url == types.CLUSTER else []
            if wanted and sorted(wanted) != sorted(stream.names.get(types.ENDPOINT, [])):
                stream.send(types.ENDPOINT, wanted)
    return found


async def test_push_of_the_same_content_sends_nothing(server: AdsServer, stream: Stream) -> None:
    await stream.subscribe_all()
    assert await pushed(server, stream, snapshot(2)) == []
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_route_change_sends_only_routes(server: AdsServer, stream: Stream) -> None:
    before = await stream.subscribe_all()
    objects = config("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml")
    (rds,) = await pushed(server, stream, snapshot(2, objects))
    assert rds.type_url == types.ROUTE
    assert rds.version_info != before[types.ROUTE].version_info
    await stream.drain()
    assert stream.status(types.ROUTE)["acked"] == rds.version_info


async def test_endpoint_change_sends_only_endpoints(server: AdsServer, stream: Stream) -> None:
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
    assert short(await pushed(server, stream, snapshot(2, registry=registry))) == ["EDS"]


async def test_cluster_change_is_always_followed_by_endpoints(
    server: AdsServer, stream: Stream
) -> None:
    before = await stream.subscribe_all()
    cds, eds = await pushed(server, stream, snapshot(2, with_reviews_policy()))
    assert (cds.type_url, eds.type_url) == (types.CLUSTER, types.ENDPOINT)
    # The endpoints did not change, yet they are re-sent so Envoy's cluster stops warming.
    assert eds.version_info == before[types.ENDPOINT].version_info
    assert eds.nonce != before[types.ENDPOINT].nonce


async def test_new_service_sends_changed_types_in_push_order(
    server: AdsServer, stream: Stream
) -> None:
    await stream.subscribe_all()
    registry = bookinfo_registry()
    registry.register(
        Workload(
            name="payments-v1",
            namespace="default",
            service="payments",
            address="127.0.0.1",
            ports=(WorkloadPort(9080, 20010),),
            labels=frozen_labels({"app": "payments"}),
        )
    )
    assert await stream.drain() == []
    server.push(snapshot(2, registry=registry))
    # Listeners do not depend on services, so LDS is not re-sent; routes to the new service
    # wait until Envoy has its cluster and endpoints.
    assert short(await settle(stream)) == ["CDS", "EDS", "EDS", "RDS"]
    assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}


async def test_push_is_only_sent_for_types_the_proxy_asked_for(
    server: AdsServer, stream: Stream
) -> None:
    await stream.request(types.LISTENER)
    registry = bookinfo_registry()
    registry.deregister("default", "ratings-v1")
    assert await pushed(server, stream, snapshot(2, registry=registry)) == []
    assert stream.status(types.CLUSTER)["status"] == "NOT SENT"


# --- restarts and disconnects -------------------------------------------------------------------


async def test_versions_are_the_same_across_server_instances() -> None:
    first, second = AdsServer(snapshot(1)), AdsServer(snapshot(1))
    a, b = Stream(first), Stream(second)
    try:
        from_first = await a.subscribe_all()
        from_second = await b.subscribe_all()
    finally:
        await a.aclose()
        await b.aclose()
    for type_url in types.PUSH_ORDER:
        assert from_first[type_url].version_info == from_second[type_url].version_info
        assert from_first[type_url].nonce != from_second[type_url].nonce


async def test_reconnecting_envoy_with_its_old_version_is_answered() -> None:
    old = AdsServer(snapshot(1))
    before = Stream(old)
    try:
        cds = await before.request(types.CLUSTER)
    finally:
        await before.aclose()
    restarted = Stream(AdsServer(snapshot(1)))
    try:
        restarted.send(types.CLUSTER, version_info=cds.version_info)
        again = await restarted.recv()
        assert again.version_info == cds.version_info
        restarted.ack(again)
        await restarted.drain()
        assert restarted.status(types.CLUSTER)["status"] == "SYNCED"
    finally:
        await restarted.aclose()


async def test_connection_is_removed_when_the_stream_ends(
    server: AdsServer, stream: Stream
) -> None:
    await stream.request(types.CLUSTER)
    assert len(server.connections) == 1
    # Labelled by the agent's version, which the sidecar's node metadata carries.
    assert server.metrics.value("pilot_xds", {"version": weft.__version__}) == 1.0
    stream.end()
    assert await stream.finished()
    assert server.connections == {}
    assert server.metrics.value("pilot_xds", {"version": weft.__version__}) == 0.0
    # A push after the proxy left goes nowhere and does not fail.
    server.push(snapshot(2, with_reviews_policy()))


async def test_two_proxies_get_their_own_connections(server: AdsServer) -> None:
    reviews = SidecarIdentity(
        workload="reviews-v1",
        namespace="default",
        service="reviews",
        labels={"app": "reviews", "version": "v1"},
        proxy_port=15002,
        inbound=(InboundPort(service_port=9080, inbound_port=20003, app_port=30003),),
    )
    a, b = Stream(server), Stream(server, reviews)
    try:
        await a.request(types.LISTENER)
        listeners = await b.request(types.LISTENER)
        assert names.inbound_listener("127.0.0.1", 20003) in resource_names(listeners)
        assert sorted(c.proxy.workload for c in server.connections.values()) == [
            "productpage-v1",
            "reviews-v1",
        ]
        b.end()
        assert await b.finished()
        assert [c.proxy.workload for c in server.connections.values()] == ["productpage-v1"]
    finally:
        await a.aclose()
        await b.aclose()


# --- make before break -------------------------------------------------------------------------


def renamed(first: str, second: str) -> list[IstioObject]:
    """Bookinfo's rules with reviews' subsets under these names, and a route between them."""
    rules = [o for o in config("destination-rule-all.yaml") if o.metadata.name != "reviews"]
    return rules + config(
        extra=[
            f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: {first}, labels: {{version: v1}}}}
  - {{name: {second}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {{destination: {{host: reviews, subset: {first}}}, weight: 50}}
    - {{destination: {{host: reviews, subset: {second}}}, weight: 50}}
"""
        ]
    )


def subset_clusters(*subsets: str) -> set[str]:
    return {f"outbound|9080|{s}|{REVIEWS}" for s in subsets}


async def test_renamed_subsets_keep_the_old_clusters_until_routes_are_taken(
    server: AdsServer,
) -> None:
    stream = Stream(server)
    try:
        await stream.subscribe_all()
        server.push(snapshot(2, renamed("a", "b")))
        await settle(stream)
        assert await stream.drain() == []
        server.push(snapshot(3, renamed("c", "d")))
        cds, eds = await stream.drain()
        # New clusters come first, the old ones kept: routes Envoy holds still name them.
        assert subset_clusters("a", "b", "c", "d") <= set(resource_names(cds))
        latest = server.config_for(stream.connection().proxy)
        assert cds.version_info != latest[types.CLUSTER].version
        stream.ack(cds)
        stream.ack(eds)
        # Routes wait until Envoy has the new clusters' endpoints.
        assert await stream.drain() == []
        new_eds = await stream.request(types.ENDPOINT, eds_names(cds))
        assert subset_clusters("c", "d") <= set(resource_names(new_eds))
        (rds,) = await stream.drain()
        assert rds.type_url == types.ROUTE
        assert stream.status(types.CLUSTER)["status"] == "STALE"  # holds clusters it should not
        stream.ack(rds)
        # Routes taken: the clusters again without the old ones, then their endpoints.
        cds, eds = await stream.drain()
        assert not subset_clusters("a", "b") & set(resource_names(cds))
        assert subset_clusters("c", "d") <= set(resource_names(cds))
        assert cds.version_info == latest[types.CLUSTER].version
        await settle(stream)
        assert {stream.status(t)["status"] for t in types.PUSH_ORDER} == {"SYNCED"}
    finally:
        await stream.aclose()


async def test_old_clusters_stay_while_envoy_refuses_the_new_routes(server: AdsServer) -> None:
    stream = Stream(server)
    try:
        await stream.subscribe_all()
        server.push(snapshot(2, renamed("a", "b")))
        await settle(stream)
        server.push(snapshot(3, renamed("c", "d")))
        responses = await settle_until(stream, types.ROUTE)
        stream.send(types.ROUTE, stream.names[types.ROUTE], response=responses[-1], error="no")
        assert await settle(stream) == []
        assert subset_clusters("a", "b") <= set(resource_names(stream.last[types.CLUSTER]))
        assert stream.status(types.CLUSTER)["status"] == "STALE"
    finally:
        await stream.aclose()


async def settle_until(stream: Stream, type_url: str) -> list[discovery_pb2.DiscoveryResponse]:
    """As `settle`, up to a response of `type_url`, which is left unanswered."""
    found: list[discovery_pb2.DiscoveryResponse] = []
    while True:
        responses = await stream.drain()
        assert responses, f"no {types.short_name(type_url)} response came"
        for response in responses:
            found.append(response)
            if response.type_url == type_url:
                return found
            stream.ack(response)
            wanted = eds_names(response) if response.type_url == types.CLUSTER else []
            if wanted and sorted(wanted) != sorted(stream.names.get(types.ENDPOINT, [])):
                stream.send(types.ENDPOINT, wanted)
