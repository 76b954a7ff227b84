"""How a port's protocol shapes what its proxy is sent: routes, listeners, upstream HTTP/2."""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from tests.unit.xds.conftest import SnapshotFactory
from weft.api.protocol import Protocol
from weft.registry.local import Workload
from weft.snapshot.proxy import InboundPort, Proxy, proxy_from_node
from weft.xds import names
from weft.xds.cds import HTTP_OPTIONS_KEY, generate_clusters
from weft.xds.lds import HCM_FILTER, TCP_PROXY_FILTER, generate_listeners
from weft.xds.rds import http_proxy_routes

SINK = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sink, namespace: default}
spec:
  hosts: [sink.example.com]
  resolution: DNS
  ports:
  - {number: 8125, name: statsd, protocol: UDP}
  - {number: 5432, name: db, protocol: TCP}
  - {number: 8080, name: web, protocol: GRPC-WEB}
  - {number: 9411, name: http-zipkin}
  - {number: 5000, name: admin}
"""


def test_udp_and_tcp_ports_get_no_virtual_host_and_undeclared_ones_do(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    routes = http_proxy_routes(proxy, make_snapshot(SINK))
    sink = sorted(vh.name for vh in routes.virtual_hosts if vh.name.startswith("sink."))
    # An undeclared port (admin) might be HTTP: Istio sniffs, Weft routes it as HTTP.
    assert sink == ["sink.example.com:5000", "sink.example.com:8080", "sink.example.com:9411"]


def _uses_http2(cluster: cluster_pb2.Cluster) -> bool:
    if HTTP_OPTIONS_KEY not in cluster.typed_extension_protocol_options:
        return False
    options = http_protocol_options_pb2.HttpProtocolOptions()
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].Unpack(options)
    return options.explicit_http_config.HasField("http2_protocol_options")


def test_grpc_web_goes_upstream_over_http2_like_grpc(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    proxy = replace(
        proxy,
        inbound=(
            InboundPort(9080, 20001, 30001),
            InboundPort(9090, 20010, 30010, Protocol.GRPC_WEB, "grpc-web"),
        ),
    )
    clusters = {c.name: c for c in generate_clusters(proxy, make_snapshot(SINK))}
    assert _uses_http2(clusters[names.outbound_cluster(8080, "", "sink.example.com")])
    assert not _uses_http2(clusters[names.outbound_cluster(9411, "", "sink.example.com")])
    assert _uses_http2(clusters[names.inbound_cluster(9090)])
    assert not _uses_http2(clusters[names.inbound_cluster(9080)])


def _filters(listener: object) -> list[str]:
    return [f.name for chain in listener.filter_chains for f in chain.filters]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("protocol", "filter_name"),
    [
        (Protocol.HTTP, HCM_FILTER),
        (Protocol.GRPC, HCM_FILTER),
        (Protocol.UNKNOWN, HCM_FILTER),  # served as HTTP, as before: Weft does not sniff
        (Protocol.TCP, TCP_PROXY_FILTER),
        (Protocol.TLS, TCP_PROXY_FILTER),
        (Protocol.MYSQL, TCP_PROXY_FILTER),
    ],
)
def test_inbound_ports_are_served_by_protocol(
    make_snapshot: SnapshotFactory, proxy: Proxy, protocol: Protocol, filter_name: str
) -> None:
    proxy = replace(proxy, inbound=(InboundPort(7000, 20100, 30100, protocol, "p"),))
    (inbound,) = [x for x in generate_listeners(proxy, make_snapshot()) if "20100" in x.name]
    assert _filters(inbound) == [filter_name]


def test_a_udp_inbound_port_gets_no_listener(make_snapshot: SnapshotFactory, proxy: Proxy) -> None:
    proxy = replace(
        proxy,
        inbound=(InboundPort(9080, 20001, 30001), InboundPort(8125, 20125, 30125, Protocol.UDP)),
    )
    listeners = [x.name for x in generate_listeners(proxy, make_snapshot())]
    assert names.inbound_listener(proxy.ip, 20001) in listeners
    assert not any("20125" in name for name in listeners)


def test_node_metadata_and_registrations_name_protocols_in_any_case() -> None:
    proxy = proxy_from_node(
        "sidecar~127.0.0.1~a.default~default.svc.cluster.local",
        {"WEFT_INBOUND": [{"servicePort": 1, "inboundPort": 2, "appPort": 3, "protocol": "grpc"}]},
    )
    assert proxy.inbound[0].protocol is Protocol.GRPC
    workload = Workload.from_json(
        {
            "name": "a",
            "service": "a",
            "ports": [{"servicePort": 1, "targetPort": 2, "protocol": "grpc-web"}],
        }
    )
    assert workload.ports[0].protocol is Protocol.GRPC_WEB


def test_a_registration_with_an_unknown_protocol_is_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"ports\[0\]\.protocol: 'SMTP' is not one of 'HTTP'"):
        Workload.from_json(
            {
                "name": "a",
                "service": "a",
                "ports": [{"servicePort": 1, "targetPort": 2, "protocol": "SMTP"}],
            }
        )
