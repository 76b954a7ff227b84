"""EDS: one ClusterLoadAssignment per EDS cluster the proxy has, healthy endpoints only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from weft.api import DestinationRule, PeerAuthentication
from weft.api.hosts import is_ip
from weft.registry.model import TLS_MODE_LABEL, Endpoint
from weft.snapshot.policies import peer_mode_in
from weft.snapshot.snapshot import Snapshot
from weft.xds import names
from weft.xds.policy import subset_labels
from weft.xds.protos import u32
from weft.xds.tls import TLS_MODE_ISTIO, TLS_MODE_KEY, TRANSPORT_SOCKET_MATCH

UNIX_PREFIX = "unix://"


def generate_endpoints(
    cluster_names: Iterable[str], snap: Snapshot, client_namespace: str
) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Assignments for the given EDS cluster names (the proxy's own EDS clusters)."""
    out = []
    for name in cluster_names:
        parsed = names.parse_outbound_cluster(name)
        host = parsed[2] if parsed is not None else ""
        out.append(
            load_assignment(
                name,
                snap.destination_rule_for(host, client_namespace),
                snap.endpoints_of(host),
                snap.peer_authentications,
                snap.root_namespace,
            )
        )
    return out


def load_assignment(
    cluster: str,
    rule: DestinationRule | None,
    endpoints: Sequence[Endpoint],
    peer_authentications: Sequence[PeerAuthentication],
    root_namespace: str,
) -> endpoint_pb2.ClusterLoadAssignment:
    """One EDS cluster's endpoints: the service's `endpoints` that the subset (of `rule`, the
    DestinationRule that applies to the client) selects, healthy ones only, with auto mTLS
    where the endpoint's PeerAuthentication allows it."""
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
    parsed = names.parse_outbound_cluster(cluster)
    if parsed is None:
        return assignment
    port, subset, _ = parsed
    selector: dict[str, str] | None = {}
    if subset:
        selector = subset_labels(rule, subset)
    if selector is None:
        return assignment  # a subset no rule defines has no endpoints
    by_locality: dict[str, list[endpoint_components_pb2.LbEndpoint]] = {}
    weights: dict[str, int] = {}
    for ep in endpoints:
        target = ep.target_port(port)
        if target is None or not ep.healthy or not ep.matches(selector):
            continue
        if not (is_ip(ep.address) or ep.address.startswith(UNIX_PREFIX)):
            # EDS takes addresses, not names (e.g. a WorkloadEntry with a DNS name selected
            # by a STATIC ServiceEntry): Envoy would refuse every endpoint of the proxy.
            continue
        # Auto mTLS reaches sidecars, except where their PeerAuthentication disables it.
        mtls = ep.labels.get(TLS_MODE_LABEL) == TLS_MODE_ISTIO and (
            peer_mode_in(peer_authentications, root_namespace, ep.namespace, ep.labels, port)
            != "DISABLE"
        )
        by_locality.setdefault(ep.locality, []).append(_lb_endpoint(ep, target, mtls))
        weights[ep.locality] = weights.get(ep.locality, 0) + max(ep.weight, 1)
    for locality in sorted(by_locality):
        region, zone, subzone = ([*locality.split("/"), "", ""])[:3]
        assignment.endpoints.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(region=region, zone=zone, sub_zone=subzone),
                lb_endpoints=by_locality[locality],
                # gRPC clients ignore a locality without weight.
                load_balancing_weight=u32(weights[locality]),
            )
        )
    return assignment


def _lb_endpoint(ep: Endpoint, port: int, mtls: bool) -> endpoint_components_pb2.LbEndpoint:
    if ep.address.startswith(UNIX_PREFIX):
        address = address_pb2.Address(pipe=address_pb2.Pipe(path=ep.address[len(UNIX_PREFIX) :]))
    else:
        address = address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=ep.address, port_value=port)
        )
    lb = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address),
        health_status=health_check_pb2.HEALTHY,
        load_balancing_weight=u32(max(ep.weight, 1)),
    )
    if mtls:
        # Selects the cluster's mTLS transport socket for this endpoint (auto mTLS).
        lb.metadata.filter_metadata[TRANSPORT_SOCKET_MATCH].update({TLS_MODE_KEY: TLS_MODE_ISTIO})
    return lb
