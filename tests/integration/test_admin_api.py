"""The real control plane answers every bad admin body and bad proxy metadata with a clear
refusal, stores nothing from it, and goes on serving the mesh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format, struct_pb2

from tests.integration.conftest import REVIEWS, MeshClient, bookinfo_spec
from weft.cli.mesh import LocalMesh
from weft.contract.node import node_id
from weft.xds import types

pytestmark = pytest.mark.integration

REGISTRATION: dict[str, Any] = {
    "name": "reviews-v9",
    "service": "reviews",
    "ports": [{"servicePort": 9080, "targetPort": 20001}],
    "labels": {"app": "reviews", "version": "v9"},
}
YAML = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"


def registration(**overrides: Any) -> bytes:
    return json.dumps({**REGISTRATION, **overrides}).encode()


# (method, path, body, status, what the error must say)
BAD: list[tuple[str, str, bytes, int, str]] = [
    ("POST", "/v1/workloads", registration(service="a b\nc"), 400, "service"),
    ("POST", "/v1/workloads", registration(namespace="Shop"), 400, "namespace"),
    ("POST", "/v1/workloads", registration(labels={"app": "x y"}), 400, "labels.app"),
    ("POST", "/v1/workloads", registration(labels={"-x": "y"}), 400, "label key"),
    ("POST", "/v1/workloads", registration(ports=[{"servicePort": 0, "targetPort": 1}]), 400,
     "ports[0].servicePort"),
    ("POST", "/v1/workloads", registration(serviceAccount="a b"), 400, "serviceAccount"),
    ("POST", "/v1/workloads", registration(address="not-an-ip"), 400, "address"),
    ("POST", "/v1/workloads", b'{"name": "\xff"}', 400, "not UTF-8"),
    ("POST", "/v1/workloads", b"[" * 50_000, 400, "nested"),
    ("POST", "/v1/workloads", b"{bad json", 400, "not valid JSON"),
    ("POST", "/v1/workloads", b" " * (64 * 1024 + 1), 413, "limit of 64 KiB"),
    ("PUT", "/v1/workloads/default/reviews-v9/health", b'{"healthy": "yes"}', 400, "healthy"),
    ("PUT", "/v1/workloads/no%20such/x/health", b'{"healthy": true}', 400, "namespace"),
    ("POST", "/v1/ca/rotate", b"{}", 400, "step"),
    ("POST", "/v1/config", YAML.encode() + b"metadata: {name: \xff}\n", 400, "not UTF-8"),
    ("POST", "/v1/config", b"spec: " + b"[" * 50_000, 400, "nested"),
    ("POST", "/v1/config", b" " * (16 * 1024 * 1024 + 1), 413, "limit of 16 MiB"),
]  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=30))
    try:
        yield session
    finally:
        await session.close()


async def test_bad_bodies_are_refused_and_the_mesh_keeps_working(
    mesh: LocalMesh, http: aiohttp.ClientSession
) -> None:
    for method, path, body, status, says in BAD:
        async with http.request(method, mesh.admin_url + path, data=body) as resp:
            answer = await resp.json()
        assert (resp.status, says in answer.get("error", "")) == (status, True), (path, answer)
    assert await mesh.registered() == []
    assert (await mesh.admin.config_status())["objects"] == []
    # Still serving: workloads register, every proxy takes its config, traffic flows.
    specs = [bookinfo_spec("productpage"), bookinfo_spec("reviews", "v1")]
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=len(specs))
    client = MeshClient(mesh, "productpage-v1")
    try:
        assert await client.versions(REVIEWS, 10) == {"v1": 10}
    finally:
        await client.close()


def node(node_id: str, metadata: dict[str, Any]) -> base_pb2.Node:
    struct = json_format.ParseDict(metadata, struct_pb2.Struct())
    return base_pb2.Node(id=node_id, cluster="x.default", metadata=struct)


async def first_answer(mesh: LocalMesh, sent: base_pb2.Node) -> discovery_pb2.DiscoveryResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.xds_port}") as channel:
        stream = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            timeout=10
        )
        await stream.write(discovery_pb2.DiscoveryRequest(node=sent, type_url=types.CLUSTER))
        response: discovery_pb2.DiscoveryResponse = await stream.read()
        stream.cancel()
        return response


async def test_a_proxy_with_malformed_metadata_is_refused_and_others_are_served(
    mesh: LocalMesh,
) -> None:
    bad = node(node_id("broken", "default"), {"LABELS": {"app": "a b"}, "WEFT_PROXY_PORT": "x"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await first_answer(mesh, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "LABELS.app" in details and "WEFT_PROXY_PORT" in details
    assert (await mesh.syncz())["proxies"] == []
    good = node(node_id("fine", "default"), {"LABELS": {"app": "fine"}})
    assert (await first_answer(mesh, good)).type_url == types.CLUSTER
