"""Synthetic meshes of a chosen size, built with the same models the control plane uses."""

from __future__ import annotations

from typing import Any

import yaml

from weft.api import IstioObject, parse_object
from weft.contract.node import node_id
from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import frozen_labels
from weft.snapshot.proxy import InboundPort, Proxy

NAMESPACE = "default"
SERVICE_PORT = 8080
# One service in this many gets a DestinationRule (2 subsets) and an 80/20 VirtualService.
ROUTED_EVERY = 5


def service_name(i: int) -> str:
    return f"svc-{i:05d}"


def registry(services: int) -> LocalRegistry:
    """`services` services on port 8080, with 2 or 3 registered workloads each (v1, v2[, v3])."""
    reg = LocalRegistry()
    port = 20000
    for i in range(services):
        name = service_name(i)
        for version in ("v1", "v2", "v3")[: 2 + i % 2]:
            reg.register(
                Workload(
                    name=f"{name}-{version}",
                    namespace=NAMESPACE,
                    service=name,
                    address="127.0.0.1",
                    ports=(WorkloadPort(SERVICE_PORT, port),),
                    labels=frozen_labels({"app": name, "version": version}),
                    service_account=name,
                )
            )
            port = 20000 + (port - 19999) % 40000
    return reg


def destination_rule(host: str, subsets: tuple[str, ...] = ("v1", "v2")) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": host, "namespace": NAMESPACE},
        "spec": {
            "host": host,
            "subsets": [{"name": s, "labels": {"version": s}} for s in subsets],
        },
    }


def split_virtual_service(host: str, weights: dict[str, int]) -> dict[str, Any]:
    """Every request to `host` split over its subsets by weight."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": host, "namespace": NAMESPACE},
        "spec": {
            "hosts": [host],
            "http": [
                {
                    "route": [
                        {"destination": {"host": host, "subset": subset}, "weight": weight}
                        for subset, weight in weights.items()
                    ]
                }
            ],
        },
    }


def routing_objects(services: int) -> list[IstioObject]:
    """A DestinationRule and an 80/20 VirtualService for one service in ROUTED_EVERY."""
    docs: list[dict[str, Any]] = []
    for i in range(0, services, ROUTED_EVERY):
        host = service_name(i)
        docs.append(destination_rule(host))
        docs.append(split_virtual_service(host, {"v1": 80, "v2": 20}))
    return [parse_object(doc, "<synthetic>", n) for n, doc in enumerate(docs)]


def sidecar(service: str, replica: int = 0) -> Proxy:
    """A sidecar of `service` v1; replicas differ only in identity, so their config is alike."""
    workload = f"{service}-v1-{replica}"
    return Proxy(
        id=node_id(workload, NAMESPACE),
        namespace=NAMESPACE,
        workload=workload,
        service=service,
        labels=frozen_labels({"app": service, "version": "v1"}),
        service_account=service,
        proxy_port=15001,
        inbound=(InboundPort(service_port=SERVICE_PORT, inbound_port=15006, app_port=8080),),
    )


def external_services_yaml(pairs: int, first: int = 0) -> str:
    """`pairs` ServiceEntries (STATIC, two 127.0.0.1 endpoints) each with a VirtualService.

    Nothing listens on their endpoints: they only make the config, and every proxy's share
    of it, as large as a real mesh's.
    """
    docs: list[dict[str, Any]] = []
    for i in range(first, first + pairs):
        host = f"ext-{i:05d}.example.internal"
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": f"ext-{i:05d}", "namespace": NAMESPACE},
                "spec": {
                    "hosts": [host],
                    "location": "MESH_EXTERNAL",
                    "resolution": "STATIC",
                    "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                    "endpoints": [
                        {"address": "127.0.0.1", "ports": {"http": 40000 + 2 * (i % 10000) + n}}
                        for n in range(2)
                    ],
                },
            }
        )
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": f"ext-{i:05d}", "namespace": NAMESPACE},
                "spec": {
                    "hosts": [host],
                    "http": [
                        {
                            "match": [{"uri": {"prefix": "/api"}}],
                            "route": [{"destination": {"host": host, "port": {"number": 80}}}],
                            "timeout": "3s",
                        },
                        {"route": [{"destination": {"host": host}}]},
                    ],
                },
            }
        )
    return yaml.safe_dump_all(docs, sort_keys=False)
