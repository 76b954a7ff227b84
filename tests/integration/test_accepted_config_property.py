"""Nothing validation accepts breaks a proxy: for random objects of every kind (every field,
from the API models), each one validation accepts generates config, and real Envoy accepts it.

Envoy checks several objects' configs per run (`envoy --mode validate` on one static
bootstrap holding them all, each under its own names and ports); when it refuses a batch, each
config is checked alone to name the object at fault.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_envoy_accepts_config import RUNTIME, envoy_validate, static_bootstrap
from tests.unit.api.strategies import JWKS, istio_objects, write_tls_files
from tests.unit.xds.conftest import bookinfo_registry, productpage_proxy
from weft.agent.sds import sds_cluster
from weft.api import KINDS, IstioObject, load_yaml
from weft.api.loader import parse_object
from weft.errors import ConfigError
from weft.snapshot.build import build_snapshot
from weft.xds.generate import generate_all

pytestmark = pytest.mark.integration

BATCHES = 200  # Envoy runs, each for up to BATCH objects: about 30 s in all here
BATCH = 16
# More of the kinds with the most to translate, and of those validation refuses most often.
WEIGHTS = {
    "VirtualService": 4,
    "DestinationRule": 3,
    "AuthorizationPolicy": 2,
    "Gateway": 2,
    "ServiceEntry": 2,
}
FIRST_PORT = 30000

REGISTRY = bookinfo_registry()
# A sidecar with a workload certificate, as every agent-run sidecar has: mTLS config is built.
PROXY = replace(productpage_proxy(), sds=True)


# Objects every generated one is put next to: subsets for routes to use, and a delegate
# VirtualService for routes to hand requests to.
BASE = load_yaml(
    """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: zz-base-subsets}  # sorts last: a generated rule wins
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-routes}
spec:
  http:
  - match: [{uri: {prefix: /reviews/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews}}]
""",
    "base.yaml",
)


def generated(objects: list[IstioObject]) -> dict[str, Any]:
    """The proxy's config with `objects` next to BASE (a later object replaces an earlier
    one of the same kind, namespace and name, as in a config store)."""
    by_key = {o.key: o for o in [*BASE, *objects]}
    snap = build_snapshot(
        1,
        list(by_key.values()),
        REGISTRY.services(),
        REGISTRY.endpoints(),
        jwks={"https://issuer.example/jwks": JWKS},
    )
    return generate_all(PROXY, snap)


def renamed(boot: bootstrap_pb2.Bootstrap, tag: str, ports: list[int]) -> dict[str, Any]:
    """One config's clusters and listeners, renamed to be unique in a shared bootstrap: every
    string that is one of its cluster names is prefixed by `tag`, every listener gets a port
    of its own."""
    doc = json_format.MessageToDict(boot)
    resources = doc.get("staticResources", {})
    names = {c["name"] for c in resources.get("clusters", [])}

    def rename(value: Any) -> Any:
        if isinstance(value, str):
            return f"{tag}/{value}" if value in names else value
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    resources = rename(resources)
    for listener in resources.get("listeners", []):
        listener["name"] = f"{tag}/{listener['name']}"
        address = listener["address"].get("socketAddress")
        if address is not None:
            address["portValue"] = ports.pop()
    return dict(resources)


def shared_bootstrap(boots: list[bootstrap_pb2.Bootstrap], sds_socket: Path) -> dict[str, Any]:
    ports = list(range(FIRST_PORT, FIRST_PORT + 100 * len(boots)))
    clusters: list[Any] = [sds_cluster(sds_socket)]
    listeners: list[Any] = []
    for i, boot in enumerate(boots):
        resources = renamed(boot, f"e{i}", ports)
        clusters += resources.get("clusters", [])
        listeners += resources.get("listeners", [])
    return {
        "node": {"id": PROXY.id, "cluster": "productpage.default"},  # SDS needs both
        "layered_runtime": RUNTIME,
        "static_resources": {"clusters": clusters, "listeners": listeners},
    }


def as_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True)


def test_every_accepted_object_generates_config_envoy_accepts(tmp_path: Path) -> None:
    write_tls_files()
    accepted: Counter[str] = Counter()
    sds_socket = tmp_path / "sds.sock"

    def check_alone(doc: Mapping[str, Any], boot: bootstrap_pb2.Bootstrap) -> str | None:
        alone = shared_bootstrap([boot], sds_socket)
        return envoy_validate(alone, tmp_path / "alone.json")

    @settings(
        max_examples=BATCHES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(istio_objects(WEIGHTS), min_size=1, max_size=BATCH))
    def check(docs: list[dict[str, Any]]) -> None:
        boots: list[tuple[Mapping[str, Any], bootstrap_pb2.Bootstrap]] = []
        objects: list[IstioObject] = []
        for doc in docs:
            try:
                obj = parse_object(doc, "<generated>", 0)
            except ConfigError:
                continue  # refused with a message: nothing reaches a proxy
            accepted[obj.kind] += 1
            objects.append(obj)
            try:
                config = generated([obj])
            except Exception as exc:
                raise AssertionError(
                    f"validation accepted this object but generation failed: {exc!r}\n"
                    + as_yaml(doc)
                ) from exc
            boots.append((doc, static_bootstrap(config)))
        if not boots:
            return
        # All of them at once too: delegates find their roots, rules their routes.
        try:
            together = static_bootstrap(generated(objects))
        except Exception as exc:
            raise AssertionError(
                f"generation failed for these objects together: {exc!r}\n" + json.dumps(docs)
            ) from exc
        batch = shared_bootstrap([together, *(b for _, b in boots)], sds_socket)
        if envoy_validate(batch, tmp_path / "batch.json") is None:
            return
        for doc, boot in boots:
            problem = check_alone(doc, boot)
            if problem is not None:
                raise AssertionError(
                    f"validation accepted this object but Envoy rejects its config: {problem}\n"
                    + as_yaml(doc)
                )
        problem = check_alone({}, together)
        raise AssertionError(
            f"Envoy rejects the config of these objects together: {problem}\n" + json.dumps(docs)
        )

    check()
    # The objects tried reached generation and Envoy, hundreds of them and of every kind.
    assert sum(accepted.values()) >= 150, accepted
    assert set(accepted) == set(KINDS), f"no object of some kinds was accepted: {accepted}"
