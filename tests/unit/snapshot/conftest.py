"""Helpers for snapshot tests: services in a few namespaces, objects from YAML."""

from __future__ import annotations

from collections.abc import Mapping

from weft.api import IstioObject, load_yaml
from weft.registry.model import Endpoint, Service, ServicePort, frozen_labels
from weft.snapshot.build import build_snapshot
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot

# (name, namespace) of each discovered service; all serve HTTP on 9080.
SERVICES = [
    ("productpage", "default"),
    ("reviews", "default"),
    ("ratings", "default"),
    ("details", "shop"),
    ("payments", "shop"),
    ("telemetry", "istio-system"),
]


def hostname(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def discovered() -> tuple[dict[str, Service], dict[str, tuple[Endpoint, ...]]]:
    services: dict[str, Service] = {}
    endpoints: dict[str, tuple[Endpoint, ...]] = {}
    for i, (name, namespace) in enumerate(SERVICES):
        host = hostname(name, namespace)
        services[host] = Service(host, namespace, (ServicePort(9080),), name=name)
        endpoints[host] = (
            Endpoint(
                service=host,
                address="127.0.0.1",
                ports={9080: 20001 + i},
                labels=frozen_labels({"app": name}),
                namespace=namespace,
                workload=f"{name}-v1",
            ),
        )
    return services, endpoints


def objects(*yaml_texts: str) -> list[IstioObject]:
    found: list[IstioObject] = []
    for i, text in enumerate(yaml_texts):
        found += load_yaml(text, f"<test {i}>")
    return found


def snapshot(
    *yaml_texts: str,
    services: Mapping[str, Service] | None = None,
    endpoints: Mapping[str, tuple[Endpoint, ...]] | None = None,
    root_namespace: str = "istio-system",
) -> Snapshot:
    found_services, found_endpoints = discovered()
    return build_snapshot(
        1,
        objects(*yaml_texts),
        found_services if services is None else services,
        found_endpoints if endpoints is None else endpoints,
        root_namespace=root_namespace,
    )


def proxy(namespace: str = "default", **labels: str) -> Proxy:
    return Proxy(
        id=f"sidecar~127.0.0.1~client.{namespace}~{namespace}.svc.cluster.local",
        namespace=namespace,
        labels=frozen_labels(labels or {"app": "client"}),
    )
