"""LDS: the sidecar's outbound HTTP proxy listener and one inbound listener per workload port."""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import address_pb2, base_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from weft.snapshot.policies import (
    SecurityPolicies,
    authorization_policies_for,
    peer_mode_in,
    request_authentications_for,
)
from weft.snapshot.proxy import InboundPort, ProxyShape
from weft.xds import names
from weft.xds.authn import jwt_authn_filter
from weft.xds.authz import http_rbac_filters, network_rbac_filters
from weft.xds.cds import ads_source
from weft.xds.protos import boolean, duration, pack
from weft.xds.routes import FAULT_FILTER
from weft.xds.tls import MESH_ALPN, inbound_mtls

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
ROUTER_FILTER = "envoy.filters.http.router"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


@dataclass(frozen=True)
class InboundPolicy:
    """Security for one inbound port: peer mTLS mode and the filters that enforce policy."""

    mode: str = "PERMISSIVE"
    http_filters: tuple[hcm.HttpFilter, ...] = ()
    network_filters: tuple[listener_components_pb2.Filter, ...] = ()


def inbound_policy(
    proxy: ProxyShape, port: InboundPort, policies: SecurityPolicies
) -> InboundPolicy:
    """PeerAuthentication, RequestAuthentication and AuthorizationPolicy for a port.

    Policies name ports by the service port (9080 for Bookinfo), the number clients use; the
    sidecar and the app listen on ports of their own in local mode.
    """
    trust_domain = policies.mesh.trust_domain
    labels = proxy.labels
    mode = peer_mode_in(
        policies.peer_authentications,
        policies.root_namespace,
        proxy.namespace,
        labels,
        port.service_port,
    )
    authz = authorization_policies_for(policies, proxy.namespace, labels)
    if not port.protocol.routed_as_http:
        return InboundPolicy(
            mode,
            network_filters=tuple(network_rbac_filters(authz, trust_domain, port.service_port)),
        )
    filters: list[hcm.HttpFilter] = []
    jwt = jwt_authn_filter(
        request_authentications_for(policies, proxy.namespace, labels), policies.jwks
    )
    if jwt is not None:
        filters.append(jwt)
    filters += http_rbac_filters(authz, trust_domain, port.service_port, mesh=policies.mesh)
    return InboundPolicy(mode, http_filters=tuple(filters))


def generate_listeners(
    proxy: ProxyShape, policies: SecurityPolicies
) -> list[listener_pb2.Listener]:
    listeners = [
        inbound_listener(proxy, port, inbound_policy(proxy, port, policies))
        for port in proxy.inbound
        if port.protocol.is_proxied  # Istio does not proxy UDP
    ]
    if proxy.proxy_port:
        listeners.append(http_proxy_listener(proxy))
    return listeners


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=port)
    )


def _router() -> hcm.HttpFilter:
    return hcm.HttpFilter(name=ROUTER_FILTER, typed_config=pack(router_pb2.Router()))


def http_proxy_listener(proxy: ProxyShape) -> listener_pb2.Listener:
    """The app's HTTP_PROXY: routes by Host/authority exactly like Istio's outbound vhosts."""
    assert proxy.proxy_port is not None
    manager = hcm.HttpConnectionManager(
        stat_prefix="outbound_http_proxy",
        codec_type=hcm.HttpConnectionManager.AUTO,
        rds=hcm.Rds(config_source=ads_source(), route_config_name=names.HTTP_PROXY_ROUTE),
        http_filters=[
            hcm.HttpFilter(name=FAULT_FILTER, typed_config=pack(fault_pb2.HTTPFault())),
            _router(),
        ],
        # Proxy clients send absolute URLs (GET http://reviews:9080/ HTTP/1.1).
        http_protocol_options=protocol_pb2.Http1ProtocolOptions(allow_absolute_url=boolean(True)),
        use_remote_address=boolean(False),
        normalize_path=boolean(True),
        stream_idle_timeout=duration(0),
    )
    return listener_pb2.Listener(
        name=names.HTTP_PROXY_LISTENER,
        address=_address("127.0.0.1", proxy.proxy_port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(manager))
                ]
            )
        ],
    )


def inbound_listener(
    proxy: ProxyShape, port: InboundPort, policy: InboundPolicy | None = None
) -> listener_pb2.Listener:
    """Traffic from the mesh for one workload port, handed to the app on 127.0.0.1.

    `mode` is the PeerAuthentication mode for the port: STRICT takes mTLS only, PERMISSIVE
    mTLS and plaintext on the same port, DISABLE plaintext only. A proxy whose agent serves
    no certificate takes plaintext only.
    """
    policy = policy or InboundPolicy()
    mode = policy.mode
    listener = listener_pb2.Listener(
        name=names.inbound_listener(proxy.ip, port.inbound_port),
        address=_address(proxy.ip, port.inbound_port),
        traffic_direction=base_pb2.INBOUND,
    )
    if not proxy.sds or mode == "DISABLE":
        listener.filter_chains.append(_inbound_chain(port, policy, mtls=False))
        return listener
    tls_chain = _inbound_chain(port, policy, mtls=True)
    tls_chain.transport_socket.CopyFrom(inbound_mtls())
    if mode == "STRICT":
        listener.filter_chains.append(tls_chain)
        return listener
    # PERMISSIVE: the TLS inspector tells mesh mTLS (ALPN "istio") from plaintext.
    listener.listener_filters.append(
        listener_components_pb2.ListenerFilter(
            name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
        )
    )
    tls_chain.filter_chain_match.transport_protocol = "tls"
    tls_chain.filter_chain_match.application_protocols.append(MESH_ALPN)
    plain = _inbound_chain(port, policy, mtls=False)
    plain.filter_chain_match.transport_protocol = "raw_buffer"
    listener.filter_chains.extend([tls_chain, plain])
    return listener


def _inbound_chain(
    port: InboundPort, policy: InboundPolicy, mtls: bool
) -> listener_components_pb2.FilterChain:
    cluster = names.inbound_cluster(port.service_port)
    filters: list[listener_components_pb2.Filter] = []
    if port.protocol.routed_as_http:
        manager = _inbound_hcm(port, cluster, mtls, policy.http_filters)
        filters.append(listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(manager)))
    else:
        filters += policy.network_filters
        filters.append(
            listener_components_pb2.Filter(
                name=TCP_PROXY_FILTER,
                typed_config=pack(tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster)),
            )
        )
    return listener_components_pb2.FilterChain(
        name="mtls" if mtls else "plaintext", filters=filters
    )


def _inbound_hcm(
    port: InboundPort, cluster: str, mtls: bool, http_filters: tuple[hcm.HttpFilter, ...] = ()
) -> hcm.HttpConnectionManager:
    route_config = route_pb2.RouteConfiguration(
        name=cluster,
        validate_clusters=boolean(False),
        virtual_hosts=[
            rc.VirtualHost(
                name=f"inbound|http|{port.service_port}",
                domains=["*"],
                routes=[
                    rc.Route(
                        name="default",
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(cluster=cluster, timeout=duration(0)),
                    )
                ],
            )
        ],
    )
    manager = hcm.HttpConnectionManager(
        stat_prefix=f"inbound_{port.service_port}",
        codec_type=hcm.HttpConnectionManager.AUTO,
        route_config=route_config,
        http_filters=[*http_filters, _router()],  # policy filters run before the router
        use_remote_address=boolean(False),
        normalize_path=boolean(True),
        stream_idle_timeout=duration(0),
    )
    if mtls:
        # The app sees who called: x-forwarded-client-cert carries the peer's SPIFFE ID.
        manager.forward_client_cert_details = hcm.HttpConnectionManager.APPEND_FORWARD
        manager.set_current_client_cert_details.uri = True
    return manager
