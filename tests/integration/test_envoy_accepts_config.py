"""Real Envoy accepts what the generators produce.

`envoy --mode validate` checks a complete static config without fetching xDS, so the
generated resources are inlined: EDS clusters become STATIC clusters carrying their generated
endpoints, and each listener's RDS reference becomes its generated route configuration.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, TypeVar

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import json_format, message

from tests.unit.xds.conftest import SAMPLES, bookinfo_registry, productpage_proxy
from tests.unit.xds.test_golden import CASES, generate_case
from weft.agent.bootstrap import SidecarIdentity, sidecar_bootstrap
from weft.agent.envoy import envoy_binary
from weft.agent.sds import sds_cluster
from weft.api import IstioObject, load_yaml
from weft.snapshot.build import build_snapshot
from weft.snapshot.snapshot import Snapshot
from weft.xds import names, types
from weft.xds.generate import Resources, generate_all

pytestmark = pytest.mark.integration

M = TypeVar("M", bound=message.Message)

VALIDATE_TIMEOUT_S = 60.0
# The same runtime the sidecar bootstrap sets (RE2 program size limits), so regex limits match.
RUNTIME = sidecar_bootstrap(
    SidecarIdentity(workload="w", namespace="default", service="s"), "127.0.0.1", 15010, 15000
)["layered_runtime"]

# Beyond the Bookinfo samples: every VirtualService and DestinationRule feature Weft translates.
EVERY_FEATURE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 100
        maxRequestsPerConnection: 5
        maxRetries: 3
        idleTimeout: 30s
    outlierDetection:
      consecutive5xxErrors: 3
      consecutiveGatewayErrors: 2
      interval: 5s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 20
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 65537}, useSourceIp: true}}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers: {end-user: {exact: jason}, x-trace: {}}
      uri: {regex: "/reviews/[0-9]+"}
      method: {exact: GET}
      queryParams: {debug: {prefix: "1"}}
      withoutHeaders: {x-skip: {exact: "yes"}}
      ignoreUriCase: true
    - authority: {prefix: reviews}
    route:
    - destination: {host: reviews, subset: v2}
      weight: 90
      headers: {request: {set: {x-subset: v2}}}
    - destination: {host: reviews, subset: v3}
      weight: 10
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,gateway-error,409"}
    fault:
      delay: {percentage: {value: 10}, fixedDelay: 100ms}
      abort: {percentage: {value: 5}, httpStatus: 503}
    mirror: {host: ratings}
    mirrorPercentage: {value: 25}
    headers:
      request: {add: {x-mesh: weft}, remove: [x-internal]}
      response: {set: {x-served-by: reviews}}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: reviews, redirectCode: 301}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v1/api}
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""

# Fields of the generated Envoy config that EVERY_FEATURE must produce.
FEATURE_FIELDS = (
    "safeRegex",
    "queryParameters",
    "invertMatch",
    "retriableStatusCodes",
    "requestMirrorPolicies",
    "hashPolicy",
    "redirect",
    "directResponse",
    "prefixRewrite",
    "typedPerFilterConfig",
    "requestHeadersToAdd",
    "MAGLEV",
    "outlierDetection",
    "circuitBreakers",
    "http2ProtocolOptions",
)


def objects(files: tuple[str, ...], *texts: str) -> list[IstioObject]:
    found: list[IstioObject] = []
    for name in files:
        found += load_yaml((SAMPLES / name).read_text(), name)
    for i, text in enumerate(texts):
        found += load_yaml(text, f"<test {i}>")
    return found


def snapshot(found: list[IstioObject]) -> Snapshot:
    registry = bookinfo_registry()
    return build_snapshot(1, found, registry.services(), registry.endpoints())


def unpacked(resources: Resources, cls: type[M]) -> dict[str, M]:
    out: dict[str, M] = {}
    for name, packed in resources.items.items():
        msg = cls()
        assert packed.Unpack(msg), f"{name} is not a {cls.__name__}"
        out[name] = msg
    return out


def static_bootstrap(config: dict[str, Resources]) -> bootstrap_pb2.Bootstrap:
    """The generated resources as one static bootstrap that Envoy can validate offline."""
    clusters = unpacked(config[types.CLUSTER], cluster_pb2.Cluster)
    assignments = unpacked(config[types.ENDPOINT], endpoint_pb2.ClusterLoadAssignment)
    listeners = unpacked(config[types.LISTENER], listener_pb2.Listener)
    routes = unpacked(config[types.ROUTE], route_pb2.RouteConfiguration)
    boot = bootstrap_pb2.Bootstrap()
    json_format.ParseDict({"layered_runtime": RUNTIME}, boot)
    for cluster in clusters.values():
        if cluster.type == cluster_pb2.Cluster.EDS:
            eds_name = cluster.eds_cluster_config.service_name or cluster.name
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(assignments[eds_name])
            cluster.load_assignment.cluster_name = cluster.name
        boot.static_resources.clusters.append(cluster)
    for listener in listeners.values():
        for chain in listener.filter_chains:
            for f in chain.filters:
                manager = hcm.HttpConnectionManager()
                if not f.typed_config.Unpack(manager) or not manager.HasField("rds"):
                    continue
                manager.route_config.CopyFrom(routes[manager.rds.route_config_name])
                f.typed_config.Pack(manager)
        boot.static_resources.listeners.append(listener)
    return boot


def envoy_validate(boot: bootstrap_pb2.Bootstrap | dict[str, Any], path: Path) -> str | None:
    """None if Envoy accepts the config, else what Envoy said about it."""
    doc = json_format.MessageToDict(boot) if isinstance(boot, message.Message) else boot
    path.write_text(json.dumps(doc, indent=1))
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


def generated(*found: IstioObject) -> dict[str, Resources]:
    return generate_all(productpage_proxy(), snapshot(list(found)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_accepts_golden_scenario(case: str, tmp_path: Path) -> None:
    golden = CASES[case]
    config = generate_case(golden)
    boot = static_bootstrap(config)
    # Everything generated is in there: no type was left empty by mistake.
    assert len(boot.static_resources.clusters) == len(config[types.CLUSTER].items) > 4
    assert len(boot.static_resources.listeners) == len(config[types.LISTENER].items) >= 2
    if golden.proxy.sds:
        # The agent's bootstrap brings the cluster mTLS secrets come from, and SDS needs the
        # node's identity.
        json_format.ParseDict(
            sds_cluster(str(tmp_path / "sds.sock")), boot.static_resources.clusters.add()
        )
        boot.node.id, boot.node.cluster = golden.proxy.id, golden.proxy.workload
    problem = envoy_validate(boot, tmp_path / f"{case}.json")
    assert problem is None, f"Envoy rejected the {case} config: {problem}"


def test_envoy_accepts_every_routing_and_policy_feature(tmp_path: Path) -> None:
    boot = static_bootstrap(generated(*objects((), EVERY_FEATURE)))
    text = json.dumps(json_format.MessageToDict(boot))
    # The features really are in what Envoy checks, not dropped on the way.
    for field in FEATURE_FIELDS:
        assert field in text, f"{field} missing from the generated config"
    problem = envoy_validate(boot, tmp_path / "every-feature.json")
    assert problem is None, f"Envoy rejected the config: {problem}"


def test_envoy_accepts_the_sidecar_bootstrap(tmp_path: Path) -> None:
    identity = SidecarIdentity(
        workload="productpage-v1",
        namespace="default",
        service="productpage",
        labels={"app": "productpage"},
        proxy_port=15001,
    )
    for host in ("127.0.0.1", "localhost"):
        boot = sidecar_bootstrap(identity, host, 15010, admin_port=15000)
        problem = envoy_validate(boot, tmp_path / f"bootstrap-{host}.json")
        assert problem is None, f"Envoy rejected the bootstrap for {host}: {problem}"


def test_the_check_catches_a_route_envoy_would_nack(tmp_path: Path) -> None:
    boot = static_bootstrap(generate_case(CASES["all-v1"]))
    broken = False
    for listener in boot.static_resources.listeners:
        if listener.name != names.HTTP_PROXY_LISTENER:
            continue
        f = listener.filter_chains[0].filters[0]
        manager = hcm.HttpConnectionManager()
        f.typed_config.Unpack(manager)
        route = manager.route_config.virtual_hosts[0].routes[0]
        route.match.safe_regex.regex = "x{1001}"  # RE2 allows at most 1000 repetitions
        f.typed_config.Pack(manager)
        broken = True
    assert broken, "no outbound HTTP proxy listener to break"
    problem = envoy_validate(boot, tmp_path / "broken.json")
    assert problem is not None, "Envoy accepted an invalid RE2 regex"
    assert "{1001}" in problem, f"Envoy's message does not name the bad repetition: {problem}"
