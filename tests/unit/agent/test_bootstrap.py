"""The sidecar's Envoy bootstrap: what Envoy needs to reach ADS, and who it says it is."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from weft.agent.bootstrap import XDS_CLUSTER, SidecarIdentity, sidecar_bootstrap
from weft.snapshot.proxy import InboundPort, proxy_from_node

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

IDENTITY = SidecarIdentity(
    workload="reviews-v2",
    namespace="bookinfo",
    service="reviews",
    labels={"app": "reviews", "version": "v2"},
    service_account="bookinfo-reviews",
    ip="127.0.0.1",
    proxy_port=15001,
    inbound=(
        InboundPort(service_port=9080, inbound_port=20011, app_port=30011),
        InboundPort(9090, 20012, 30012, protocol="GRPC", name="grpc"),
    ),
)


def parsed(bootstrap: dict[str, Any]) -> bootstrap_pb2.Bootstrap:
    """The bootstrap read as Envoy reads it: unknown fields or bad values raise."""
    return json_format.ParseDict(bootstrap, bootstrap_pb2.Bootstrap())


@pytest.fixture
def bootstrap() -> bootstrap_pb2.Bootstrap:
    return parsed(sidecar_bootstrap(IDENTITY, "127.0.0.1", 15010, admin_port=15000))


def xds_cluster(bootstrap: bootstrap_pb2.Bootstrap) -> cluster_pb2.Cluster:
    (cluster,) = [c for c in bootstrap.static_resources.clusters if c.name == XDS_CLUSTER]
    return cluster


def test_xds_cluster_speaks_http2(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert xds_cluster(bootstrap).typed_extension_protocol_options[HTTP_OPTIONS].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")


def test_xds_cluster_points_at_the_control_plane(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    cluster = xds_cluster(bootstrap)
    assert cluster.type == cluster_pb2.Cluster.STATIC
    (locality,) = cluster.load_assignment.endpoints
    (lb,) = locality.lb_endpoints
    socket = lb.endpoint.address.socket_address
    assert (socket.address, socket.port_value) == ("127.0.0.1", 15010)


def test_ads_carries_clusters_and_listeners(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    dynamic = bootstrap.dynamic_resources
    ads = dynamic.ads_config
    assert ads.api_type == ads.DELTA_GRPC  # incremental by default
    assert ads.set_node_on_first_message_only is True
    (service,) = ads.grpc_services
    assert service.envoy_grpc.cluster_name == XDS_CLUSTER
    assert dynamic.cds_config.HasField("ads") and dynamic.lds_config.HasField("ads")
    assert dynamic.cds_config.resource_api_version == config_source_pb2.V3
    assert ads.transport_api_version == config_source_pb2.V3


def test_state_of_the_world_on_request() -> None:
    boot = parsed(sidecar_bootstrap(IDENTITY, "127.0.0.1", 15010, admin_port=15000, delta=False))
    ads = boot.dynamic_resources.ads_config
    assert ads.api_type == ads.GRPC
    assert ads.set_node_on_first_message_only is True


def test_node_identifies_the_workload_istio_style(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    assert bootstrap.node.id == "sidecar~127.0.0.1~reviews-v2.bookinfo~bookinfo.svc.cluster.local"
    assert bootstrap.node.cluster == "reviews.bookinfo"  # ADS needs node.cluster


def test_admin_listens_on_loopback(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    socket = bootstrap.admin.address.socket_address
    assert (socket.address, socket.port_value) == ("127.0.0.1", 15000)


def test_node_metadata_round_trips_to_the_same_proxy(bootstrap: bootstrap_pb2.Bootstrap) -> None:
    # What the control plane reads back from the first ADS request.
    metadata = json_format.MessageToDict(bootstrap.node.metadata)
    proxy = proxy_from_node(bootstrap.node.id, metadata)
    assert (proxy.namespace, proxy.workload, proxy.service) == ("bookinfo", "reviews-v2", "reviews")
    assert dict(proxy.labels) == {"app": "reviews", "version": "v2"}
    assert proxy.service_account == "bookinfo-reviews"
    assert (proxy.ip, proxy.proxy_port) == ("127.0.0.1", 15001)
    assert proxy.inbound == tuple(sorted(IDENTITY.inbound))
    assert proxy.kind == "sidecar"


def test_proxy_without_an_outbound_port_round_trips_without_one() -> None:
    identity = SidecarIdentity(workload="ratings-v1", namespace="default", service="ratings")
    boot = parsed(sidecar_bootstrap(identity, "127.0.0.1", 15010, admin_port=15000))
    proxy = proxy_from_node(boot.node.id, json_format.MessageToDict(boot.node.metadata))
    assert (proxy.proxy_port, proxy.inbound, proxy.namespace) == (None, (), "default")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", cluster_pb2.Cluster.STATIC),
        ("::1", cluster_pb2.Cluster.STATIC),
        ("localhost", cluster_pb2.Cluster.STRICT_DNS),
        ("weft-control-plane.weft-system.svc", cluster_pb2.Cluster.STRICT_DNS),
    ],
)
def test_xds_host_name_is_resolved_by_dns(host: str, expected: int) -> None:
    boot = parsed(sidecar_bootstrap(IDENTITY, host, 15010, admin_port=15000))
    cluster = xds_cluster(boot)
    assert cluster.type == expected
    socket = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert socket.address == host
