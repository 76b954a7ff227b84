"""Fixtures for generator tests: a Bookinfo-like registry and config, built into a Snapshot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from weft.api.loader import load_yaml
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import InboundPort, Proxy
from weft.snapshot.snapshot import Snapshot

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "bookinfo" / "networking"

# (service, version, inbound port) of each registered instance; service port 9080 for all.
BOOKINFO = [
    ("productpage", "v1", 20001),
    ("details", "v1", 20002),
    ("reviews", "v1", 20003),
    ("reviews", "v2", 20004),
    ("reviews", "v3", 20005),
    ("ratings", "v1", 20006),
]


def bookinfo_registry() -> LocalRegistry:
    registry = LocalRegistry()
    for service, version, port in BOOKINFO:
        registry.register(
            Workload(
                name=f"{service}-{version}",
                namespace="default",
                service=service,
                address="127.0.0.1",
                ports=(WorkloadPort(9080, port),),
                labels=frozen_labels({"app": service, "version": version}),
                service_account=f"bookinfo-{service}",
            )
        )
    return registry


def productpage_proxy() -> Proxy:
    return Proxy(
        id="sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local",
        namespace="default",
        workload="productpage-v1",
        service="productpage",
        labels=frozen_labels({"app": "productpage", "version": "v1"}),
        service_account="bookinfo-productpage",
        proxy_port=15001,
        inbound=(InboundPort(service_port=9080, inbound_port=20001, app_port=30001),),
    )


SnapshotFactory = Callable[..., Snapshot]


@pytest.fixture
def make_snapshot() -> SnapshotFactory:
    def make(*yaml_texts: str, files: tuple[str, ...] = ()) -> Snapshot:
        objects = []
        for name in files:
            objects += load_yaml((SAMPLES / name).read_text(), name)
        for i, text in enumerate(yaml_texts):
            objects += load_yaml(text, f"<test {i}>")
        registry = bookinfo_registry()
        return build_snapshot(1, objects, registry.services(), registry.endpoints())

    return make


@pytest.fixture
def proxy() -> Proxy:
    return productpage_proxy()
