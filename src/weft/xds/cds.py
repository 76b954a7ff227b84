"""CDS: outbound clusters per visible service port and subset, inbound clusters per app port."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2

from weft.api import DestinationRule
from weft.registry.model import TLS_MODE_LABEL, Endpoint, Service, ServicePort
from weft.snapshot.proxy import InboundPort, Proxy
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.view import visible_services
from weft.xds import names
from weft.xds.policy import EffectivePolicy, effective_policy
from weft.xds.protos import duration, istio_duration, pack, struct
from weft.xds.tls import (
    TLS_MODE_ISTIO,
    TLS_MODE_KEY,
    outbound_mtls,
    raw_socket,
    simple_tls,
    sni,
    spiffe_id,
)

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds, Istio's default
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

_LB = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
    "UNSPECIFIED": cluster_pb2.Cluster.LEAST_REQUEST,
}


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def generate_clusters(proxy: Proxy, snap: Snapshot) -> list[cluster_pb2.Cluster]:
    return [*outbound_clusters(proxy, snap), *(inbound_cluster(p) for p in proxy.inbound)]


def outbound_clusters(proxy: Proxy, snap: Snapshot) -> list[cluster_pb2.Cluster]:
    """Clusters for what the proxy can reach: a function of its view, not of its ports."""
    clusters: list[cluster_pb2.Cluster] = []
    for service in visible_services(proxy, snap):
        clusters += service_clusters(
            service,
            snap.destination_rule_for(service.hostname, proxy.namespace),
            snap.endpoints_of(service.hostname),
            snap.mesh.trust_domain,
            proxy.sds,
        )
    return clusters


def service_clusters(
    service: Service,
    dr: DestinationRule | None,
    endpoints: Sequence[Endpoint],
    trust_domain: str,
    has_certs: bool,
) -> list[cluster_pb2.Cluster]:
    """One service's outbound clusters (each port, each subset of its DestinationRule) for a
    client; every input is an argument, so the result can be cached by them."""
    subsets = [s.name for s in dr.spec.subsets or []] if dr is not None else []
    sans = mesh_identities(endpoints, trust_domain)
    clusters: list[cluster_pb2.Cluster] = []
    for port in service.ports:
        for subset in ["", *subsets]:
            policy = effective_policy(dr, port.port, subset)
            cluster = outbound_cluster(
                service, port, subset, policy, _dns_targets(service, port.port, endpoints)
            )
            apply_client_tls(
                cluster, policy, sans, has_certs, sni(port.port, subset, service.hostname)
            )
            clusters.append(cluster)
    return clusters


def _dns_targets(
    service: Service, port: int, endpoints: Sequence[Endpoint]
) -> list[tuple[str, int]]:
    if service.resolution != "DNS":
        return []
    return [(ep.address, ep.target_port(port) or port) for ep in endpoints]


def mesh_identities(endpoints: Sequence[Endpoint], trust_domain: str) -> list[str]:
    """The SPIFFE identities the service's sidecar endpoints run as: what a client verifies."""
    return sorted(
        {
            spiffe_id(trust_domain, ep.namespace, ep.service_account)
            for ep in endpoints
            if ep.labels.get(TLS_MODE_LABEL) == TLS_MODE_ISTIO
        }
    )


def apply_client_tls(
    cluster: cluster_pb2.Cluster,
    policy: EffectivePolicy,
    sans: list[str],
    has_certs: bool,
    server_name: str,
) -> None:
    """DestinationRule TLS when set; otherwise Istio's auto mTLS toward sidecar endpoints."""
    tls = policy.tls
    mode = tls.mode if tls is not None else None
    if mode == "DISABLE":
        return
    if tls is not None and mode in ("SIMPLE", "MUTUAL"):
        cluster.transport_socket.CopyFrom(
            simple_tls(
                tls.sni or cluster.name.rsplit("|", 1)[-1],
                tls.subject_alt_names or [],
                tls.ca_certificates,
                tls.client_certificate if mode == "MUTUAL" else None,
                tls.private_key if mode == "MUTUAL" else None,
                insecure_skip_verify=bool(tls.insecure_skip_verify),
                crl_file=tls.ca_crl,
            )
        )
        return
    if not has_certs:
        return  # a proxy with no workload certificate can only speak plaintext
    if tls is not None and mode == "ISTIO_MUTUAL":
        cluster.transport_socket.CopyFrom(
            outbound_mtls(tls.subject_alt_names or sans, tls.sni or server_name)
        )
        return
    # Auto mTLS: endpoints labelled as sidecars get mTLS, the rest plaintext.
    cluster.transport_socket_matches.extend(
        [
            cluster_pb2.Cluster.TransportSocketMatch(
                name=f"{TLS_MODE_KEY}-{TLS_MODE_ISTIO}",
                match=struct({TLS_MODE_KEY: TLS_MODE_ISTIO}),
                transport_socket=outbound_mtls(sans, server_name),
            ),
            cluster_pb2.Cluster.TransportSocketMatch(
                name=f"{TLS_MODE_KEY}-disabled", match=struct({}), transport_socket=raw_socket()
            ),
        ]
    )


def outbound_cluster(
    service: Service,
    port: ServicePort,
    subset: str,
    policy: EffectivePolicy,
    dns_targets: Sequence[tuple[str, int]] = (),
) -> cluster_pb2.Cluster:
    """One outbound cluster; a DNS service resolves `dns_targets` (address, port) itself."""
    name = names.outbound_cluster(port.port, subset, service.hostname)
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        lb_policy=cluster_pb2.Cluster.LEAST_REQUEST,  # Istio's default since 1.14
        common_lb_config=cluster_pb2.Cluster.CommonLbConfig(
            healthy_panic_threshold=_percent(0.0)  # never send to unhealthy hosts in panic
        ),
    )
    if service.resolution == "DNS":
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
        cluster.load_assignment.CopyFrom(
            endpoint_pb2.ClusterLoadAssignment(
                cluster_name=name,
                endpoints=[
                    endpoint_components_pb2.LocalityLbEndpoints(
                        lb_endpoints=[
                            _lb_endpoint(address, target)
                            for address, target in dns_targets or [(service.hostname, port.port)]
                        ]
                    )
                ],
            )
        )
    else:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.CopyFrom(
            cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source(), service_name=name)
        )
    _apply_policy(cluster, policy, port)
    return cluster


def inbound_cluster(port: InboundPort) -> cluster_pb2.Cluster:
    name = names.inbound_cluster(port.service_port)
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(DEFAULT_CONNECT_TIMEOUT),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[_lb_endpoint("127.0.0.1", port.app_port)]
                )
            ],
        ),
    )
    if port.protocol.uses_http2:
        _set_http_options(cluster, http2=True, max_requests=0, idle=None)
    return cluster


def _lb_endpoint(address: str, port: int) -> endpoint_components_pb2.LbEndpoint:
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=address, port_value=port)
            )
        )
    )


def _percent(value: float) -> percent_pb2.Percent:
    return percent_pb2.Percent(value=value)


def _apply_policy(cluster: cluster_pb2.Cluster, policy: EffectivePolicy, port: ServicePort) -> None:
    http2 = port.protocol.uses_http2
    max_requests = 0
    idle: str | None = None
    lb = policy.load_balancer
    if lb is not None:
        if lb.simple is not None:
            # PASSTHROUGH never gets here: validation refuses it (see _load_balancer there).
            cluster.lb_policy = _LB[lb.simple]
        elif lb.consistent_hash is not None:
            ch = lb.consistent_hash
            if ch.maglev is not None:
                cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
            else:
                cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
                size = (ch.ring_hash.minimum_ring_size if ch.ring_hash else None) or (
                    ch.minimum_ring_size
                )
                if size:
                    cluster.ring_hash_lb_config.minimum_ring_size.value = size
    pool = policy.connection_pool
    if pool is not None:
        thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds()
        if pool.tcp is not None:
            if pool.tcp.max_connections:
                thresholds.max_connections.value = pool.tcp.max_connections
            if pool.tcp.connect_timeout:
                cluster.connect_timeout.CopyFrom(istio_duration(pool.tcp.connect_timeout))
        if pool.http is not None:
            h = pool.http
            if h.http1_max_pending_requests:
                thresholds.max_pending_requests.value = h.http1_max_pending_requests
            if h.http2_max_requests:
                thresholds.max_requests.value = h.http2_max_requests
            if h.max_retries:
                thresholds.max_retries.value = h.max_retries
            max_requests = h.max_requests_per_connection or 0
            idle = h.idle_timeout
            if h.h2_upgrade_policy == "UPGRADE":
                http2 = True
        cluster.circuit_breakers.thresholds.append(thresholds)
    od = policy.outlier_detection
    if od is not None:
        outlier = outlier_detection_pb2.OutlierDetection()
        errors = od.consecutive_5xx_errors
        if errors is None and od.consecutive_errors is not None:
            errors = od.consecutive_errors
        if errors is not None:
            outlier.consecutive_5xx.value = errors
            if errors == 0:
                outlier.enforcing_consecutive_5xx.value = 0
        if od.consecutive_gateway_errors is not None:
            outlier.consecutive_gateway_failure.value = od.consecutive_gateway_errors
            outlier.enforcing_consecutive_gateway_failure.value = 100
        if od.interval:
            outlier.interval.CopyFrom(istio_duration(od.interval))
        if od.base_ejection_time:
            outlier.base_ejection_time.CopyFrom(istio_duration(od.base_ejection_time))
        if od.max_ejection_percent is not None:
            outlier.max_ejection_percent.value = od.max_ejection_percent
        if od.min_health_percent is not None:
            cluster.common_lb_config.healthy_panic_threshold.value = float(od.min_health_percent)
        cluster.outlier_detection.CopyFrom(outlier)
    if http2 or max_requests or idle:
        _set_http_options(cluster, http2=http2, max_requests=max_requests, idle=idle)


def _set_http_options(
    cluster: cluster_pb2.Cluster, http2: bool, max_requests: int, idle: str | None
) -> None:
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    common = protocol_pb2.HttpProtocolOptions()
    if max_requests:
        common.max_requests_per_connection.value = max_requests
    if idle:
        common.idle_timeout.CopyFrom(istio_duration(idle))
    if max_requests or idle:
        opts.common_http_protocol_options.CopyFrom(common)
    if http2:
        opts.explicit_http_config.http2_protocol_options.CopyFrom(
            protocol_pb2.Http2ProtocolOptions()
        )
    else:
        opts.explicit_http_config.http_protocol_options.CopyFrom(
            protocol_pb2.Http1ProtocolOptions()
        )
    cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(opts))
