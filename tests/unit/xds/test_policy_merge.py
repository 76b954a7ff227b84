"""Which DestinationRule settings a cluster gets: Istio's documented merge of rule, port and
subset levels."""

from __future__ import annotations

from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from tests.unit.xds.conftest import SnapshotFactory
from weft.api import DestinationRule, load_yaml
from weft.snapshot.proxy import Proxy
from weft.xds.cds import generate_clusters
from weft.xds.policy import effective_policy

RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 99}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 99}}
      portLevelSettings:
      - port: {number: 9080}
        outlierDetection: {consecutive5xxErrors: 7}
"""


def rule() -> DestinationRule:
    (dr,) = load_yaml(RULE, "dr.yaml")
    assert isinstance(dr, DestinationRule)
    return dr


def test_port_level_settings_replace_the_rule_level_as_a_whole() -> None:
    other = effective_policy(rule(), 8080)
    assert other.load_balancer.simple == "LEAST_REQUEST"
    assert other.connection_pool.tcp.max_connections == 10
    on_port = effective_policy(rule(), 9080)
    assert on_port.load_balancer.simple == "RANDOM"
    # Left out at port level: the default, not the rule level's setting.
    assert on_port.connection_pool is None
    assert on_port.outlier_detection is None


def test_a_subset_overrides_part_by_part_and_its_port_level_as_a_whole() -> None:
    v1 = effective_policy(rule(), 9080, "v1")
    assert v1.load_balancer.simple == "RANDOM"  # from the rule's port level
    assert v1.connection_pool.tcp.max_connections == 99
    v2 = effective_policy(rule(), 9080, "v2")
    assert v2.outlier_detection.consecutive_5xx_errors == 7
    assert v2.connection_pool is None  # the subset's port level replaced its own settings
    assert v2.load_balancer is None
    assert effective_policy(rule(), 8080, "v2").connection_pool.tcp.max_connections == 99


def upstream_validation(clusters: list[Any], name: str) -> Any:
    (cluster,) = [c for c in clusters if c.name == name]
    context = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context)
    return context.common_tls_context.validation_context


def test_the_rules_ca_and_revocation_list_reach_the_upstream_tls_context(
    make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot("""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, caCrl: /etc/certs/crl.pem}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {tls: {mode: SIMPLE}}
""")
    clusters = generate_clusters(proxy, snap)
    host = "reviews.default.svc.cluster.local"
    with_crl = upstream_validation(clusters, f"outbound|9080||{host}")
    assert with_crl.trusted_ca.filename == "/etc/certs/ca.pem"
    assert with_crl.crl.filename == "/etc/certs/crl.pem"
    # The rule's CA is the only one trusted, with or without a revocation list.
    assert not with_crl.HasField("system_root_certs")
    without_crl = upstream_validation(clusters, f"outbound|9080|v1|{host}")
    assert without_crl.trusted_ca.filename == "/etc/certs/ca.pem"
    assert not without_crl.HasField("system_root_certs")
    # No CA named: the system's roots.
    assert upstream_validation(clusters, f"outbound|9080|v2|{host}").HasField("system_root_certs")
