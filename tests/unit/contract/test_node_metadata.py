"""Node metadata: what the agent writes into Envoy's bootstrap is what the control plane
reads back, and metadata that would break generation is refused, naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from weft.agent.bootstrap import SidecarIdentity
from weft.contract.node import (
    META_INBOUND,
    META_LABELS,
    InboundPort,
    NodeMetadata,
    node_id,
)
from weft.contract.wire import MessageError
from weft.snapshot.proxy import proxy_from_node

NODE = node_id("reviews-v1", "bookinfo")


def through_struct(metadata: dict[str, Any]) -> dict[str, Any]:
    """Node metadata after the trip through a protobuf Struct (numbers become floats)."""
    struct = json_format.ParseDict(metadata, struct_pb2.Struct())
    return dict(json_format.MessageToDict(struct))


def test_what_the_agent_writes_the_control_plane_reads() -> None:
    identity = SidecarIdentity(
        workload="reviews-v1",
        namespace="bookinfo",
        service="reviews",
        labels={"app": "reviews"},
        proxy_port=15001,
        inbound=(InboundPort(9080, 20001, 30001, "GRPC", "grpc"),),
        sds_socket="/tmp/sds.sock",
        admin_port=15000,
    )
    read = NodeMetadata.from_node(identity.node_id, through_struct(identity.metadata()))
    assert read == identity.node_metadata()
    assert read.inbound_ports() == identity.inbound
    assert (read.sds, read.admin_port, read.proxy_port) == (True, 15000, 15001)


def test_values_as_istio_agents_write_them_are_read() -> None:
    meta = NodeMetadata.from_node(
        NODE,
        {
            "WEFT_PROXY_PORT": "15001",
            "WEFT_SDS": "true",
            "INSTANCE_IPS": "10.0.0.8,fd00::8",
            "SERVICE_ACCOUNT": "",
            "ISTIO_META_MESH_ID": "cluster.local",  # not Weft's: left alone
            "PLATFORM_METADATA": {"anything": ["at", "all"]},
        },
    )
    assert (meta.proxy_port, meta.sds, meta.instance_ips) == (15001, True, ["10.0.0.8", "fd00::8"])
    assert meta.service_account is None


@pytest.mark.parametrize(
    ("metadata", "key", "allowed"),
    [
        pytest.param({"NAMESPACE": "a b"}, "NAMESPACE", "DNS-1123 label", id="namespace"),
        pytest.param({"WEFT_SERVICE": "a b\nc"}, "WEFT_SERVICE", "DNS-1123", id="service"),
        pytest.param({"WORKLOAD_NAME": "Reviews"}, "WORKLOAD_NAME", "subdomain", id="workload"),
        pytest.param({"SERVICE_ACCOUNT": "a:b"}, "SERVICE_ACCOUNT", "subdomain", id="account"),
        pytest.param({META_LABELS: {"a b": "x"}}, "LABELS", "label key", id="label-key"),
        pytest.param({META_LABELS: {"app": "x\ny"}}, "LABELS.app", "label value", id="value"),
        pytest.param({META_LABELS: {"app": 1.0}}, "LABELS.app", "string", id="label-number"),
        pytest.param({META_LABELS: "app=x"}, "LABELS", "mapping", id="labels-text"),
        pytest.param({"INSTANCE_IPS": "10.0.0.1,nope"}, "INSTANCE_IPS[1]", "IP", id="ip"),
        pytest.param({"WEFT_PROXY_PORT": "http"}, "WEFT_PROXY_PORT", "integer", id="port-text"),
        pytest.param({"WEFT_PROXY_PORT": 70000.0}, "WEFT_PROXY_PORT", "1..65535", id="port"),
        pytest.param({"WEFT_PROXY_PORT": 80.5}, "WEFT_PROXY_PORT", "whole", id="port-fraction"),
        pytest.param({"WEFT_ADMIN_PORT": -1}, "WEFT_ADMIN_PORT", "1..65535", id="admin-port"),
        pytest.param({"WEFT_SDS": "maybe"}, "WEFT_SDS", "true or false", id="sds"),
        pytest.param({"ISTIO_VERSION": "1.0\x1b[2J"}, "ISTIO_VERSION", "printable", id="version"),
        pytest.param({META_INBOUND: {"servicePort": 1}}, META_INBOUND, "list", id="inbound-map"),
        pytest.param(
            {META_INBOUND: [{"servicePort": 9080, "inboundPort": 0, "appPort": 1}]},
            "WEFT_INBOUND[0].inboundPort",
            "1..65535",
            id="inbound-port",
        ),
        pytest.param(
            {META_INBOUND: [{"servicePort": 9080, "inboundPort": 1}]},
            "appPort",
            "missing",
            id="inbound-missing",
        ),
        pytest.param(
            {META_INBOUND: [{"servicePort": 1, "inboundPort": 2, "appPort": 3, "protocol": "X"}]},
            "protocol",
            "'HTTP'",
            id="inbound-protocol",
        ),
        pytest.param(
            {
                META_INBOUND: [
                    {"servicePort": 1, "inboundPort": 2, "appPort": 3},
                    {"servicePort": 4, "inboundPort": 2, "appPort": 5, "name": "web"},
                ]
            },
            "inbound_port 2",
            "more than once",
            id="inbound-twice",
        ),
    ],
)
def test_metadata_that_would_break_generation_is_refused(
    metadata: dict[str, Any], key: str, allowed: str
) -> None:
    with pytest.raises(MessageError) as caught:
        proxy_from_node(NODE, metadata)
    message = str(caught.value)
    assert NODE in message  # which proxy
    assert key in message
    assert allowed in message


@pytest.mark.parametrize(
    "node",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 2000, id="too-long"),
        pytest.param("sidecar\n~forged log line", id="control-characters"),
        pytest.param("sidecar~10.0.0.1~pod.Bad NS~x.svc.cluster.local", id="namespace-in-id"),
    ],
)
def test_unusable_node_ids_are_refused(node: str) -> None:
    with pytest.raises(MessageError, match="node id"):
        proxy_from_node(node, {})


def test_namespace_from_an_istio_style_id_is_checked_only_when_it_is_used() -> None:
    proxy = proxy_from_node("sidecar~10.0.0.1~pod.Bad NS~x", {"NAMESPACE": "shop"})
    assert proxy.namespace == "shop"
