"""Envoy's bootstrap for a sidecar: who it is (node) and where its control plane is (ADS)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from weft import __version__
from weft.agent.sds import sds_cluster
from weft.contract.node import InboundPort, NodeMetadata, node_id

XDS_CLUSTER = "xds-grpc"


@dataclass(frozen=True)
class SidecarIdentity:
    """Everything the bootstrap says about the workload; the control plane reads it back."""

    workload: str
    namespace: str
    service: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    ip: str = "127.0.0.1"
    proxy_port: int | None = None
    inbound: tuple[InboundPort, ...] = ()
    sds_socket: str | None = None  # the agent serves certificates here: mesh mTLS on
    admin_port: int | None = None

    @property
    def node_id(self) -> str:
        return node_id(self.workload, self.namespace, self.ip)

    def metadata(self) -> dict[str, Any]:
        """The node metadata, as written into the bootstrap."""
        return self.node_metadata().to_struct()

    def node_metadata(self) -> NodeMetadata:
        return NodeMetadata(
            namespace=self.namespace,
            workload=self.workload,
            service=self.service,
            labels=dict(self.labels),
            service_account=self.service_account,
            instance_ips=[self.ip],
            proxy_port=self.proxy_port,
            inbound=list(self.inbound),
            sds=self.sds_socket is not None,
            admin_port=self.admin_port,
            version=__version__,
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def sidecar_bootstrap(
    identity: SidecarIdentity, xds_host: str, xds_port: int, admin_port: int, delta: bool = True
) -> dict[str, Any]:
    """The bootstrap as a JSON-ready dict. With `delta`, Envoy speaks incremental ADS: a
    change sends only the resources it touched, and a restarted control plane resends none
    that Envoy already holds; without, state of the world."""
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {
            "id": identity.node_id,
            "cluster": f"{identity.service}.{identity.namespace}",
            "metadata": identity.metadata(),
        },
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                # The node is ~60 KB; once per stream is enough.
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER,
                            # Reconnect quickly after a control-plane restart.
                            "retry_policy": {
                                "retry_back_off": {"base_interval": "0.2s", "max_interval": "2s"}
                            },
                        }
                    }
                ],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        # Istio users write regexes longer than Envoy's default program-size limit allows.
        "layered_runtime": {
            "layers": [
                {
                    "name": "weft",
                    "static_layer": {
                        "re2.max_program_size.error_level": 32768,
                        "re2.max_program_size.warn_level": 1000,
                    },
                }
            ]
        },
        "static_resources": {
            "clusters": [
                *([sds_cluster(identity.sds_socket)] if identity.sds_socket else []),
                {
                    "name": XDS_CLUSTER,
                    "type": "STATIC" if _is_ip(xds_host) else "STRICT_DNS",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": xds_host,
                                                    "port_value": xds_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                    # ADS is gRPC: without HTTP/2 here Envoy never gets past initializing.
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {
                                "http2_protocol_options": {
                                    "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                                }
                            },
                        }
                    },
                },
            ]
        },
    }
