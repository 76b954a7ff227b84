"""How each part of a snapshot is made from its sources (config objects of some kinds, the
registry's services and endpoints, the mesh config, JWKS documents). Pure functions; which
sources each one takes is declared in `weft.snapshot.dependencies.PARTS`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from weft.api import IstioObject, MeshConfig, ServiceEntry, WorkloadEntry
from weft.api.protocol import protocol_of_port
from weft.api.workload import WorkloadEntrySpec
from weft.registry.model import Endpoint, Service, ServicePort, frozen_labels

_O = TypeVar("_O", bound=IstioObject)


def by_name(objects: tuple[_O, ...]) -> tuple[_O, ...]:
    """Objects of one kind in Istio's tie-break order here: namespace, then name."""
    return tuple(sorted(objects, key=lambda o: (o.metadata.namespace, o.metadata.name)))


def services(
    service_entries: tuple[ServiceEntry, ...], registry_services: Mapping[str, Service]
) -> Mapping[str, Service]:
    """Discovered services and ServiceEntry hosts, by hostname in order. A discovered service
    wins over a ServiceEntry of the same name, as in Istio."""
    merged = dict(registry_services)
    for service, _ in _entry_services(service_entries, (), {}, with_endpoints=False):
        merged.setdefault(service.hostname, service)
    return MappingProxyType(dict(sorted(merged.items())))


def endpoints(
    service_entries: tuple[ServiceEntry, ...],
    workload_entries: tuple[WorkloadEntry, ...],
    registry_services: Mapping[str, Service],
    registry_endpoints: Mapping[str, tuple[Endpoint, ...]],
) -> Mapping[str, tuple[Endpoint, ...]]:
    """Discovered endpoints and those of ServiceEntry hosts (their own endpoints, the
    WorkloadEntries and registered workloads they select)."""
    merged = dict(registry_endpoints)
    for service, eps in _entry_services(service_entries, workload_entries, registry_endpoints):
        if service.hostname not in registry_services and service.hostname not in merged:
            merged[service.hostname] = eps
    return MappingProxyType(merged)


def frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


def same(value: MeshConfig) -> MeshConfig:
    return value


def _entry_services(
    service_entries: Sequence[ServiceEntry],
    workload_entries: Sequence[WorkloadEntry],
    discovered: Mapping[str, tuple[Endpoint, ...]],
    *,
    with_endpoints: bool = True,
) -> Iterable[tuple[Service, tuple[Endpoint, ...]]]:
    for se in service_entries:
        yield from _service_entry_services(se, workload_entries, discovered, with_endpoints)


def _service_entry_services(
    se: ServiceEntry,
    entries: Sequence[WorkloadEntry],
    discovered: Mapping[str, tuple[Endpoint, ...]],
    with_endpoints: bool,
) -> Iterable[tuple[Service, tuple[Endpoint, ...]]]:
    spec = se.spec
    namespace = se.metadata.namespace
    ports = tuple(
        sorted(
            ServicePort(
                p.number,
                p.name or f"{(p.protocol or 'tcp').lower()}-{p.number}",
                protocol_of_port(p.protocol, p.name),
            )
            for p in spec.ports or []
        )
    )
    resolution: Any = "DNS" if spec.resolution in ("DNS", "DNS_ROUND_ROBIN") else "STATIC"
    if spec.resolution == "NONE":
        resolution = "NONE"
    for host in spec.hosts:
        service = Service(
            hostname=host,
            namespace=namespace,
            ports=ports,
            name=host.split(".", 1)[0],
            mesh_external=spec.location != "MESH_INTERNAL",
            resolution=resolution,
            source=f"ServiceEntry {namespace}/{se.metadata.name}",
        )
        if not with_endpoints:
            yield service, ()
            continue
        eps: list[Endpoint] = []
        for we in spec.endpoints or []:
            eps.append(_endpoint(host, namespace, we.address or host, we, ports))
        if spec.workload_selector is not None:
            selector = spec.workload_selector.labels or {}
            for entry in entries:
                if entry.metadata.namespace == namespace and all(
                    entry.spec.labels.get(k) == v for k, v in selector.items()
                ):
                    eps.append(
                        _endpoint(host, namespace, entry.spec.address or "", entry.spec, ports)
                    )
            # Registered workloads in the same namespace are WorkloadEntries too.
            for existing in discovered.values():
                for ep in existing:
                    if ep.namespace == namespace and ep.matches(selector):
                        eps.append(_retarget(ep, host, ports))
        if not eps and resolution == "DNS":
            eps.append(
                Endpoint(
                    service=host,
                    address=host,
                    ports={p.port: p.port for p in ports},
                    namespace=namespace,
                )
            )
        yield service, tuple(eps)


def _endpoint(
    host: str,
    namespace: str,
    address: str,
    spec: WorkloadEntrySpec,
    ports: tuple[ServicePort, ...],
) -> Endpoint:
    by_name = spec.ports or {}
    return Endpoint(
        service=host,
        address=address,
        ports={p.port: by_name.get(p.name, p.port) for p in ports},
        labels=frozen_labels(spec.labels),
        service_account=spec.service_account or "default",
        namespace=namespace,
        weight=spec.weight or 1,
        locality=spec.locality or "",
    )


def _retarget(ep: Endpoint, host: str, ports: tuple[ServicePort, ...]) -> Endpoint:
    """A registered workload selected by a ServiceEntry: map ports by number when it has them."""
    mapping = {p.port: ep.ports.get(p.port, p.port) for p in ports}
    return Endpoint(
        service=host,
        address=ep.address,
        ports=mapping,
        labels=ep.labels,
        service_account=ep.service_account,
        namespace=ep.namespace,
        workload=ep.workload,
        healthy=ep.healthy,
        weight=ep.weight,
        locality=ep.locality,
    )
