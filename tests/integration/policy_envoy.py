"""A static Envoy config around generated security filters: one HTTP listener answering from a
direct response, one TCP listener, and the clusters ext_authz providers point at."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format

from weft.agent.bootstrap import SidecarIdentity, sidecar_bootstrap
from weft.agent.envoy import envoy_binary
from weft.xds.protos import pack

VALIDATE_TIMEOUT_S = 60.0
# The sidecar's runtime (RE2 program size limits), so regex limits are the ones sidecars get.
RUNTIME = sidecar_bootstrap(
    SidecarIdentity(workload="w", namespace="default", service="s"), "127.0.0.1", 15010, 15000
)["layered_runtime"]
TCP_CLUSTER = "inbound|9000||"


def _address(port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )


def static_cluster(name: str, port: int, *, http2: bool = False) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(address=_address(port))
                        )
                    ]
                )
            ],
        ),
    )
    if http2:
        options = http_protocol_options_pb2.HttpProtocolOptions(
            explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
            )
        )
        cluster.typed_extension_protocol_options[
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ].CopyFrom(pack(options))
    return cluster


def http_listener(http_filters: Sequence[hcm.HttpFilter], port: int) -> listener_pb2.Listener:
    """Answers 200 "ok" to whatever the filters let through."""
    route = route_pb2.RouteConfiguration(
        name="policy",
        virtual_hosts=[
            rc.VirtualHost(
                name="all",
                domains=["*"],
                routes=[
                    rc.Route(
                        match=rc.RouteMatch(prefix="/"),
                        direct_response=rc.DirectResponseAction(
                            status=200, body={"inline_string": "ok"}
                        ),
                    )
                ],
            )
        ],
    )
    manager = hcm.HttpConnectionManager(
        stat_prefix="inbound_8080",
        route_config=route,
        http_filters=[
            *http_filters,
            hcm.HttpFilter(
                name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())
            ),
        ],
    )
    return listener_pb2.Listener(
        name="policy_http",
        address=_address(port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=pack(manager),
                    )
                ]
            )
        ],
    )


def tcp_listener(
    network_filters: Sequence[listener_components_pb2.Filter], port: int
) -> listener_pb2.Listener:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix="inbound_9000", cluster=TCP_CLUSTER)
    return listener_pb2.Listener(
        name="policy_tcp",
        address=_address(port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    *network_filters,
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy)
                    ),
                ]
            )
        ],
    )


def policy_bootstrap(
    listeners: Sequence[listener_pb2.Listener],
    clusters: Sequence[cluster_pb2.Cluster] = (),
) -> bootstrap_pb2.Bootstrap:
    boot = bootstrap_pb2.Bootstrap()
    json_format.ParseDict({"layered_runtime": RUNTIME}, boot)
    boot.static_resources.listeners.extend(listeners)
    boot.static_resources.clusters.extend([static_cluster(TCP_CLUSTER, 9), *clusters])
    return boot


def write_bootstrap(boot: bootstrap_pb2.Bootstrap, path: Path) -> Path:
    doc: dict[str, Any] = json_format.MessageToDict(boot)
    path.write_text(json.dumps(doc, indent=1))
    return path


def envoy_validate(boot: bootstrap_pb2.Bootstrap, path: Path) -> str | None:
    """None if Envoy accepts the config, else what Envoy said about it."""
    write_bootstrap(boot, path)
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_S,
        check=False,
    )
    if result.returncode == 0:
        return None
    return f"exit {result.returncode}: {(result.stderr or result.stdout)[-4000:]}"
