from __future__ import annotations

from pathlib import Path

import pytest

from weft.api import (
    KINDS,
    ConfigKey,
    Destination,
    DestinationRule,
    Gateway,
    HTTPRoute,
    HTTPRouteDestination,
    ObjectMeta,
    ServiceEntry,
    Sidecar,
    VirtualService,
    VirtualServiceSpec,
    WorkloadEntry,
    WorkloadGroup,
    load_file,
    load_yaml,
)


def _by_kind(path: Path) -> dict[str, object]:
    return {obj.kind: obj for obj in load_file(path)}


def test_bookinfo_virtual_service(bookinfo_path: Path) -> None:
    vs = _by_kind(bookinfo_path)["VirtualService"]
    assert isinstance(vs, VirtualService)
    assert vs.key == ConfigKey("VirtualService", "bookinfo", "reviews")
    jason, split = vs.spec.http
    assert jason.match[0].headers["end-user"].exact == "jason"
    assert jason.route[0].destination.subset == "v2"
    assert jason.route[0].weight == 0
    assert [(r.destination.subset, r.weight) for r in split.route] == [("v1", 80), ("v3", 20)]
    assert split.timeout == "1.5s"
    assert split.retries is not None
    assert split.retries.per_try_timeout == "500ms"


def test_bookinfo_destination_rule(bookinfo_path: Path) -> None:
    dr = _by_kind(bookinfo_path)["DestinationRule"]
    assert isinstance(dr, DestinationRule)
    policy = dr.spec.traffic_policy
    assert policy is not None
    assert policy.load_balancer is not None and policy.load_balancer.simple == "LEAST_REQUEST"
    assert policy.connection_pool is not None and policy.connection_pool.http is not None
    assert policy.connection_pool.http.http1_max_pending_requests == 10
    assert policy.connection_pool.http.h2_upgrade_policy == "UPGRADE"
    assert policy.outlier_detection is not None
    assert policy.outlier_detection.consecutive_5xx_errors == 7
    assert policy.tls is not None and policy.tls.mode == "ISTIO_MUTUAL"
    port_policy = policy.port_level_settings[0]
    assert port_policy.port is not None and port_policy.port.number == 9080
    assert port_policy.load_balancer is not None
    cookie = port_policy.load_balancer.consistent_hash
    assert cookie is not None and cookie.http_cookie is not None
    assert cookie.http_cookie.name == "user"
    assert [s.name for s in dr.spec.subsets] == ["v1", "v2", "v3"]
    assert dr.spec.subsets[1].labels == {"version": "v2"}


def test_bookinfo_other_kinds(bookinfo_path: Path) -> None:
    kinds = _by_kind(bookinfo_path)
    se = kinds["ServiceEntry"]
    assert isinstance(se, ServiceEntry)
    assert se.spec.ports[0].protocol == "TLS"  # written lower case, stored as Istio spells it
    assert se.spec.resolution == "DNS"
    gw = kinds["Gateway"]
    assert isinstance(gw, Gateway)
    https = gw.spec.servers[1]
    assert https.tls is not None and https.tls.credential_name == "books-cert"
    assert https.tls.min_protocol_version == "TLSV1_2"
    sidecar = kinds["Sidecar"]
    assert isinstance(sidecar, Sidecar)
    assert sidecar.spec.egress[0].hosts == ["./*", "istio-system/*"]
    wg = kinds["WorkloadGroup"]
    assert isinstance(wg, WorkloadGroup)
    assert wg.spec.probe is not None and wg.spec.probe.http_get is not None
    assert wg.spec.probe.http_get.http_headers[0].value == "weft"
    assert wg.spec.probe.failure_threshold == 3  # Istio's default
    assert wg.spec.template.ports == {"http": 9080}
    we = kinds["WorkloadEntry"]
    assert isinstance(we, WorkloadEntry)
    assert we.spec.address == "10.0.0.12"


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_every_api_version_is_accepted(version: str) -> None:
    text = f"""
apiVersion: networking.istio.io/{version}
kind: ServiceEntry
metadata: {{name: httpbin}}
spec:
  hosts: [httpbin.org]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
"""
    (se,) = load_yaml(text, "se.yaml")
    assert se.api_version == f"networking.istio.io/{version}"


def test_kubernetes_fields_are_ignored() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: shop
  uid: 0b1c6a44-0000-4000-8000-000000000000
  resourceVersion: "4012"
  generation: 3
  creationTimestamp: 2024-05-01T10:00:00Z
  managedFields: [{manager: kubectl}]
spec:
  egress: [{hosts: ["./*"]}]
status:
  observedGeneration: 3
  conditions: [{type: Reconciled, status: "True"}]
"""
    (sidecar,) = load_yaml(text, "sidecar.yaml")
    assert sidecar.metadata == ObjectMeta(name="default", namespace="shop")


def test_namespace_defaults_to_default() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec: {host: ratings}
"""
    (dr,) = load_yaml(text, "dr.yaml")
    assert dr.key == ConfigKey("DestinationRule", "default", "ratings")


def test_models_are_immutable() -> None:
    vs = VirtualService(metadata=ObjectMeta(name="a"), spec=VirtualServiceSpec(hosts=["a"]))
    with pytest.raises(ValueError):
        vs.metadata.name = "b"  # type: ignore[misc]


def test_python_names_and_istio_names_both_construct() -> None:
    by_name = HTTPRouteDestination(destination=Destination(host="a"), weight=10)
    by_alias = HTTPRouteDestination.model_validate({"destination": {"host": "a"}, "weight": 10})
    assert by_name == by_alias
    route = HTTPRoute.model_validate({"route": [], "directResponse": {"status": 503}})
    assert route.direct_response is not None and route.direct_response.status == 503


def test_dump_uses_istio_field_names(bookinfo_path: Path) -> None:
    dr = _by_kind(bookinfo_path)["DestinationRule"]
    assert isinstance(dr, DestinationRule)
    data = dr.model_dump(by_alias=True, exclude_none=True)
    pool = data["spec"]["trafficPolicy"]["connectionPool"]
    assert pool["http"]["http1MaxPendingRequests"] == 10
    assert data["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 7
    assert data["spec"]["trafficPolicy"]["portLevelSettings"][0]["port"] == {"number": 9080}


def test_config_keys_sort_by_kind_namespace_name() -> None:
    keys = [
        ConfigKey("VirtualService", "b", "x"),
        ConfigKey("DestinationRule", "z", "a"),
        ConfigKey("VirtualService", "a", "y"),
    ]
    assert sorted(keys) == [keys[1], keys[2], keys[0]]
    assert str(keys[0]) == "VirtualService b/x"
    assert len({keys[0], ConfigKey("VirtualService", "b", "x")}) == 1


def test_kinds_table_lists_every_kind() -> None:
    assert set(KINDS) == {
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
        "WorkloadEntry",
        "WorkloadGroup",
        "Gateway",
        "Sidecar",
        "PeerAuthentication",
        "AuthorizationPolicy",
        "RequestAuthentication",
    }
    for name, cls in KINDS.items():
        assert cls.model_fields["kind"].default == name
