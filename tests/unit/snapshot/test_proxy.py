"""What the control plane learns about a proxy from its xDS node: id and metadata."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from weft.agent.bootstrap import SidecarIdentity
from weft.contract.node import META_INSTANCE_IPS, META_NAMESPACE, node_id
from weft.snapshot.proxy import InboundPort, proxy_from_node


def as_sent_by_envoy(metadata: dict[str, Any]) -> dict[str, Any]:
    """Node metadata after the trip through a protobuf Struct (numbers become floats)."""
    struct = json_format.ParseDict(metadata, struct_pb2.Struct())
    return dict(json_format.MessageToDict(struct))


IDENTITY = SidecarIdentity(
    workload="reviews-v2",
    namespace="bookinfo",
    service="reviews",
    labels={"app": "reviews", "version": "v2"},
    service_account="bookinfo-reviews",
    ip="127.0.0.1",
    proxy_port=15001,
    inbound=(
        InboundPort(
            service_port=9443, inbound_port=20012, app_port=30012, protocol="GRPC", name="grpc"
        ),
        InboundPort(service_port=9080, inbound_port=20011, app_port=30011),
    ),
)


def test_metadata_becomes_the_proxy() -> None:
    proxy = proxy_from_node(IDENTITY.node_id, as_sent_by_envoy(IDENTITY.metadata()))
    assert proxy.id == IDENTITY.node_id
    assert (proxy.namespace, proxy.workload, proxy.service) == ("bookinfo", "reviews-v2", "reviews")
    assert dict(proxy.labels) == {"app": "reviews", "version": "v2"}
    assert proxy.service_account == "bookinfo-reviews"
    assert (proxy.ip, proxy.proxy_port, proxy.kind) == ("127.0.0.1", 15001, "sidecar")
    # Inbound ports come back as ints, in port order.
    assert proxy.inbound == (
        InboundPort(9080, 20011, 30011, "HTTP", "http"),
        InboundPort(9443, 20012, 30012, "GRPC", "grpc"),
    )


def test_namespace_comes_from_an_istio_style_node_id_without_metadata() -> None:
    proxy = proxy_from_node(
        "sidecar~10.4.0.7~reviews-v1-5d8f9.bookinfo~bookinfo.svc.cluster.local", {}
    )
    assert proxy.namespace == "bookinfo"
    assert proxy.ip == "127.0.0.1"


def test_namespace_in_metadata_wins_over_the_node_id() -> None:
    proxy = proxy_from_node(node_id("reviews-v1", "bookinfo"), {META_NAMESPACE: "shop"})
    assert proxy.namespace == "shop"


def test_unknown_node_id_without_metadata_is_in_default() -> None:
    proxy = proxy_from_node("my-grpc-client", {})
    assert (proxy.namespace, proxy.workload, proxy.proxy_port, proxy.inbound) == (
        "default",
        "",
        None,
        (),
    )
    assert dict(proxy.labels) == {}


def test_router_node_id_is_a_gateway() -> None:
    proxy = proxy_from_node(
        "router~10.0.0.1~ingress-1.istio-system~istio-system.svc.cluster.local", {}
    )
    assert (proxy.kind, proxy.namespace) == ("router", "istio-system")


def test_first_instance_ip_is_the_proxys_address() -> None:
    proxy = proxy_from_node("x", {META_INSTANCE_IPS: "10.0.0.8,fd00::8"})
    assert proxy.ip == "10.0.0.8"


def test_proxies_differing_only_in_id_share_a_config_key() -> None:
    meta = as_sent_by_envoy(IDENTITY.metadata())
    a = proxy_from_node(node_id("reviews-v2", "bookinfo"), meta)
    b = proxy_from_node(
        "sidecar~127.0.0.1~reviews-v2-other.bookinfo~bookinfo.svc.cluster.local", meta
    )
    assert a.config_key() == b.config_key()
    other_labels = {**meta, "LABELS": {"app": "reviews", "version": "v3"}}
    assert proxy_from_node(a.id, other_labels).config_key() != a.config_key()
