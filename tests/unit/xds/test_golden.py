"""Golden files: the generated Envoy config of whole scenarios, as readable YAML.

Each case is a proxy, a registry and Istio config; its golden file holds every resource the
proxy gets (clusters, endpoints, listeners, routes). The config of the cases beyond Bookinfo's
routing samples is in golden/config/, next to the output it gives. Everything is fixed (ports,
addresses, key sets), so the files change only when generation does.

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/unit/xds` and review
the diff like code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format, message, symbol_database

from tests.unit.xds.conftest import SAMPLES, bookinfo_registry, productpage_proxy
from weft.api import IstioObject, MeshConfig, load_yaml, parse_mesh_config, validate
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import TLS_MODE_LABEL, frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import InboundPort, Proxy
from weft.xds import types
from weft.xds.generate import Resources, generate_all
from weft.xds.tls import TLS_MODE_ISTIO

GOLDEN = Path(__file__).parent / "golden"
CONFIG = GOLDEN / "config"
SECURITY_SAMPLES = SAMPLES.parent / "security"

# A fixed key set stands for the one the control plane fetched from the issuer's jwksUri.
JWKS_URI = "https://issuer.example.com/.well-known/jwks.json"
JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "issuer-example-1",
                "alg": "ES256",
                "x": "KX01dj_Pi478Oik2feKnwXwB0S-kVkcs_8FRPgczF6s",
                "y": "ibJzOy3BCWEzAeHJM8Xha-ygOo_3ERlb-gPBo0wPTN0",
            }
        ]
    },
    separators=(",", ":"),
)


def _workload(
    name: str, namespace: str, service: str, ports: tuple[WorkloadPort, ...], sidecar: bool
) -> Workload:
    version = name.rsplit("-", 1)[1]
    labels = {"app": service, "version": version}
    if sidecar:
        labels[TLS_MODE_LABEL] = TLS_MODE_ISTIO  # as `weft run` labels a workload with mTLS
    return Workload(
        name=name,
        namespace=namespace,
        service=service,
        address="127.0.0.1",
        ports=ports,
        labels=frozen_labels(labels),
        service_account=f"{'bookinfo-' if namespace == 'default' else ''}{service}",
    )


def mesh_workloads() -> tuple[Workload, ...]:
    """Bookinfo with sidecars (but details-v1, which has none) and a second namespace, shop."""
    http = WorkloadPort  # name "http", protocol HTTP
    return (
        _workload(
            "productpage-v1",
            "default",
            "productpage",
            (http(9080, 20001), WorkloadPort(9091, 20007, "tcp-metrics", "TCP")),
            True,
        ),
        _workload("details-v1", "default", "details", (http(9080, 20002),), False),
        _workload("reviews-v1", "default", "reviews", (http(9080, 20003),), True),
        _workload("reviews-v2", "default", "reviews", (http(9080, 20004),), True),
        _workload("reviews-v3", "default", "reviews", (http(9080, 20005),), True),
        _workload("ratings-v1", "default", "ratings", (http(9080, 20006),), True),
        _workload(
            "cart-v1",
            "shop",
            "cart",
            (http(9080, 21001), WorkloadPort(9090, 21002, "grpc", "GRPC")),
            True,
        ),
        _workload(
            "ledger-v1", "shop", "ledger", (WorkloadPort(5432, 21003, "tcp-pg", "TCP"),), True
        ),
        _workload("ext-authz-v1", "shop", "ext-authz", (http(8000, 21004),), True),
    )


def productpage_with_certs() -> Proxy:
    """productpage with a workload certificate and a second, TCP, port."""
    base = productpage_proxy()
    return replace(
        base,
        labels=frozen_labels({**base.labels, TLS_MODE_LABEL: TLS_MODE_ISTIO}),
        inbound=(
            *base.inbound,
            InboundPort(9091, 20007, 30007, protocol="TCP", name="tcp-metrics"),
        ),
        sds=True,
    )


def cart_proxy() -> Proxy:
    return Proxy(
        id="sidecar~127.0.0.1~cart-v1.shop~shop.svc.cluster.local",
        namespace="shop",
        workload="cart-v1",
        service="cart",
        labels=frozen_labels({"app": "cart", "version": "v1"}),
        service_account="cart",
        proxy_port=15001,
        inbound=(
            InboundPort(9080, 21001, 31001),
            InboundPort(9090, 21002, 31002, protocol="GRPC", name="grpc"),
        ),
    )


@dataclass(frozen=True)
class Case:
    """One golden: the proxy, the registry it sits in, and the config files applied."""

    files: tuple[Path, ...]
    proxy: Proxy = field(default_factory=productpage_proxy)
    workloads: tuple[Workload, ...] = field(default_factory=lambda: bookinfo_registry().workloads())
    mesh: Path | None = None
    jwks: Mapping[str, str] = field(default_factory=dict)


def _routing(*names: str) -> Case:
    return Case(files=tuple(SAMPLES / n for n in names))


CASES: dict[str, Case] = {
    "no-rules": _routing(),
    "all-v1": _routing("destination-rule-all.yaml", "virtual-service-all-v1.yaml"),
    "reviews-80-20": _routing("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"),
    "reviews-jason-v2": _routing(
        "destination-rule-all.yaml", "virtual-service-reviews-jason-v2.yaml"
    ),
    "mtls": Case(
        files=(CONFIG / "mtls.yaml",),
        proxy=productpage_with_certs(),
        workloads=mesh_workloads(),
    ),
    "authz": Case(
        files=(SECURITY_SAMPLES / "require-jwt-productpage.yaml", CONFIG / "authz.yaml"),
        proxy=productpage_with_certs(),
        workloads=mesh_workloads(),
        mesh=CONFIG / "authz-mesh.yaml",
        jwks={JWKS_URI: JWKS},
    ),
    "sidecar-scope.productpage": Case(
        files=(CONFIG / "sidecar-scope.yaml",), workloads=mesh_workloads()
    ),
    "sidecar-scope.cart": Case(
        files=(CONFIG / "sidecar-scope.yaml",), proxy=cart_proxy(), workloads=mesh_workloads()
    ),
    "dr-policy": Case(files=(CONFIG / "dr-policy.yaml",), workloads=mesh_workloads()),
}


def load_config(case: Case) -> list[IstioObject]:
    """The case's objects, checked as `weft apply` checks them: goldens show accepted config."""
    objects: list[IstioObject] = []
    for path in case.files:
        loaded = load_yaml(path.read_text(), path.name)
        for obj in loaded:
            assert validate(obj) == [], f"{path.name}: {obj.metadata.name} is refused"
        objects += loaded
    return objects


def generate_case(case: Case) -> dict[str, Resources]:
    """Everything the case's proxy is served, generated from scratch."""
    registry = LocalRegistry()
    for workload in case.workloads:
        registry.register(workload)
    mesh = parse_mesh_config(case.mesh.read_text(), case.mesh.name) if case.mesh else MeshConfig()
    snap = build_snapshot(
        1,
        load_config(case),
        registry.services(),
        registry.endpoints(),
        mesh=mesh,
        jwks=case.jwks,
    )
    return generate_all(case.proxy, snap)


def readable(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for type_url in types.PUSH_ORDER:
        items = []
        for name, packed in config[type_url].items.items():
            cls = symbol_database.Default().GetSymbol(type_url.rsplit("/", 1)[1])
            msg = cls()
            packed.Unpack(msg)
            data = json.loads(json_format.MessageToJson(msg))
            items.append({"name": name, "resource": _maps_sorted(msg, data)})
        out[types.short_name(type_url)] = items
    return out


# Messages whose JSON form is not an object of their fields.
_JSON_SCALARS = {
    "google.protobuf.Duration",
    "google.protobuf.Timestamp",
    "google.protobuf.FieldMask",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    *(f"google.protobuf.{kind}Value" for kind in ("Bool", "Bytes", "String", "Double", "Float")),
    *(f"google.protobuf.{kind}Value" for kind in ("Int32", "Int64", "UInt32", "UInt64")),
}


def _maps_sorted(msg: message.Message, data: Any) -> Any:
    """`data` (msg as JSON) with the entries of every map sorted by key.

    The protobuf runtime iterates maps in hash order, which changes from run to run; what
    Envoy is sent does not (it is serialized deterministically), so neither may the goldens.
    """
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        return _keys_sorted(data)
    if name == "google.protobuf.Any":
        inner = symbol_database.Default().GetSymbol(msg.TypeName())()  # type: ignore[attr-defined]
        msg.Unpack(inner)  # type: ignore[attr-defined]
        if inner.DESCRIPTOR.full_name in _JSON_SCALARS | {"google.protobuf.Struct"}:
            return {**data, "value": _maps_sorted(inner, data["value"])}
        return _maps_sorted(inner, data)
    if name in _JSON_SCALARS or not isinstance(data, dict):
        return data
    for fd, value in msg.ListFields():
        if fd.json_name not in data:
            continue
        entry = fd.message_type
        if entry is not None and entry.GetOptions().map_entry:
            json_map = data[fd.json_name]
            nested = entry.fields_by_name["value"].message_type is not None
            data[fd.json_name] = {
                key: _maps_sorted(value[_map_key(entry, key)], json_map[key]) if nested else item
                for key, item in sorted(json_map.items())
            }
        elif entry is not None and fd.is_repeated:
            data[fd.json_name] = [
                _maps_sorted(m, d) for m, d in zip(value, data[fd.json_name], strict=True)
            ]
        elif entry is not None:
            data[fd.json_name] = _maps_sorted(value, data[fd.json_name])
    return data


def _map_key(entry: Any, text: str) -> Any:
    kind = entry.fields_by_name["key"].type
    if kind == entry.fields_by_name["key"].TYPE_STRING:
        return text
    if kind == entry.fields_by_name["key"].TYPE_BOOL:
        return text == "true"
    return int(text)


def _keys_sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _keys_sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_keys_sorted(v) for v in data]
    return data


def as_text(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, width=100)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_config_matches_golden(case: str) -> None:
    text = as_text(readable(generate_case(CASES[case])))
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: create it with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"generated config differs from {path}"


def test_every_golden_file_has_a_case() -> None:
    """A golden left behind by a renamed case would otherwise go stale unnoticed."""
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(CASES)
