"""TrafficPolicy: load balancing, connection pools, outlier detection and upstream TLS."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from weft.api.base import (
    Duration,
    IstioModel,
    NonNegativeInt,
    PortNumber,
    PortSelector,
    PositiveDuration,
)


class HTTPCookie(IstioModel):
    name: str
    path: str | None = None
    ttl: Duration | None = None


class RingHash(IstioModel):
    minimum_ring_size: NonNegativeInt | None = None


class MagLev(IstioModel):
    table_size: NonNegativeInt | None = None


class ConsistentHashLB(IstioModel):
    """Exactly one hash key: header, cookie, source IP or query parameter."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: NonNegativeInt | None = None  # deprecated: use ringHash

    def hash_keys_set(self) -> list[str]:
        keys = {
            "httpHeaderName": self.http_header_name is not None,
            "httpCookie": self.http_cookie is not None,
            "useSourceIp": bool(self.use_source_ip),
            "httpQueryParameterName": self.http_query_parameter_name is not None,
        }
        return [k for k, present in keys.items() if present]


class LocalityDistribute(IstioModel):
    from_: str = Field(alias="from")
    to: dict[str, NonNegativeInt] = Field(default_factory=dict)


class LocalityFailover(IstioModel):
    from_: str = Field(alias="from")
    to: str


class LocalityLoadBalancerSetting(IstioModel):
    distribute: list[LocalityDistribute] = Field(default_factory=list)
    failover: list[LocalityFailover] = Field(default_factory=list)
    failover_priority: list[str] = Field(default_factory=list)
    enabled: bool | None = None


SimpleLB = Literal[
    "UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN"
]


class LoadBalancerSettings(IstioModel):
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None


class TcpKeepalive(IstioModel):
    probes: NonNegativeInt | None = None
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(IstioModel):
    max_connections: NonNegativeInt | None = None
    connect_timeout: PositiveDuration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class HTTPSettings(IstioModel):
    http1_max_pending_requests: NonNegativeInt | None = None
    http2_max_requests: NonNegativeInt | None = None
    max_requests_per_connection: NonNegativeInt | None = None
    max_retries: NonNegativeInt | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] = "DEFAULT"
    use_client_protocol: bool = False
    max_concurrent_streams: NonNegativeInt | None = None


class ConnectionPoolSettings(IstioModel):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(IstioModel):
    consecutive_errors: NonNegativeInt | None = None  # deprecated: use consecutive5xxErrors
    consecutive_5xx_errors: NonNegativeInt | None = Field(
        default=None, alias="consecutive5xxErrors"
    )
    consecutive_gateway_errors: NonNegativeInt | None = None
    consecutive_local_origin_failures: NonNegativeInt | None = None
    split_external_local_origin_errors: bool = False
    interval: PositiveDuration | None = None
    base_ejection_time: PositiveDuration | None = None
    max_ejection_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    min_health_percent: Annotated[int, Field(ge=0, le=100)] | None = None


class ClientTLSSettings(IstioModel):
    """TLS from the sidecar to the upstream service."""

    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] = "DISABLE"
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None


class TunnelSettings(IstioModel):
    protocol: Literal["CONNECT", "POST"] = "CONNECT"
    target_host: str
    target_port: PortNumber


class ProxyProtocol(IstioModel):
    version: Literal["V1", "V2"] = "V1"


class PortTrafficPolicy(IstioModel):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(IstioModel):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[PortTrafficPolicy] = Field(default_factory=list)
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
