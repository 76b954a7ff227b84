"""Build a Snapshot from config objects and discovered services. Pure: same inputs, same output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, replace
from types import MappingProxyType
from typing import TypeVar

from weft.api import (
    AuthorizationPolicy,
    DestinationRule,
    Gateway,
    IstioObject,
    MeshConfig,
    PeerAuthentication,
    RequestAuthentication,
    ServiceEntry,
    Sidecar,
    VirtualService,
    WorkloadEntry,
)
from weft.api.protocol import protocol_of_port
from weft.api.workload import WorkloadEntrySpec
from weft.registry.model import Endpoint, Service, ServicePort, frozen_labels
from weft.snapshot.snapshot import Snapshot


def build_snapshot(
    version: int,
    objects: Sequence[IstioObject],
    services: Mapping[str, Service],
    endpoints: Mapping[str, tuple[Endpoint, ...]],
    root_namespace: str | None = None,
    *,
    mesh: MeshConfig | None = None,
    jwks: Mapping[str, str] | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Merge discovered services with ServiceEntries and index the routing and security config.

    The root namespace is `root_namespace` when given, else the mesh config's (istio-system).
    With `previous`, every part equal to the previous snapshot's is that very object (each
    host's endpoints too), and so are its indexes: generation caches keyed by the identity of
    their inputs then hit for everything the change did not touch.
    """
    mesh = mesh if mesh is not None else MeshConfig()
    if root_namespace is None:
        root_namespace = mesh.root_namespace
    elif root_namespace != mesh.root_namespace:
        mesh = mesh.model_copy(update={"root_namespace": root_namespace})
    all_services = dict(services)
    all_endpoints = dict(endpoints)
    entries = [o for o in objects if isinstance(o, WorkloadEntry)]
    for se in (o for o in objects if isinstance(o, ServiceEntry)):
        for service, eps in _service_entry_services(se, entries, endpoints):
            # Discovered services win over a ServiceEntry of the same name, as in Istio.
            if service.hostname not in all_services:
                all_services[service.hostname] = service
                all_endpoints[service.hostname] = eps
    snap = Snapshot(
        version=version,
        services=MappingProxyType(dict(sorted(all_services.items()))),
        endpoints=MappingProxyType(all_endpoints),
        virtual_services=_sorted(o for o in objects if isinstance(o, VirtualService)),
        destination_rules=_sorted(o for o in objects if isinstance(o, DestinationRule)),
        sidecars=_sorted(o for o in objects if isinstance(o, Sidecar)),
        gateways=_sorted(o for o in objects if isinstance(o, Gateway)),
        root_namespace=root_namespace,
        peer_authentications=_sorted(o for o in objects if isinstance(o, PeerAuthentication)),
        authorization_policies=_sorted(o for o in objects if isinstance(o, AuthorizationPolicy)),
        request_authentications=_sorted(o for o in objects if isinstance(o, RequestAuthentication)),
        mesh=mesh,
        jwks=MappingProxyType(dict(jwks or {})),
    )
    return snap if previous is None else _reuse(previous, snap)


def _reuse(previous: Snapshot, snap: Snapshot) -> Snapshot:
    """`snap` with each part that equals `previous`'s replaced by `previous`'s object."""
    same: dict[str, object] = {}
    for f in fields(Snapshot):
        if f.name in ("version", "endpoints"):
            continue
        old, new = getattr(previous, f.name), getattr(snap, f.name)
        if old is not new and old == new:
            same[f.name] = old
    endpoints = {
        host: old if (old := previous.endpoints.get(host)) is not None and old == eps else eps
        for host, eps in snap.endpoints.items()
    }
    if endpoints.keys() == previous.endpoints.keys() and all(
        eps is previous.endpoints[host] for host, eps in endpoints.items()
    ):
        same["endpoints"] = previous.endpoints
    else:
        same["endpoints"] = MappingProxyType(endpoints)
    snap = replace(snap, **same)  # type: ignore[arg-type]
    previous.carry_indexes(snap)
    return snap


_T = TypeVar(
    "_T",
    VirtualService,
    DestinationRule,
    Sidecar,
    Gateway,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
)


def _sorted(objects: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(sorted(objects, key=lambda o: (o.metadata.namespace, o.metadata.name)))


def _service_entry_services(
    se: ServiceEntry,
    entries: Sequence[WorkloadEntry],
    discovered: Mapping[str, tuple[Endpoint, ...]],
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
    resolution = "DNS" if spec.resolution in ("DNS", "DNS_ROUND_ROBIN") else "STATIC"
    if spec.resolution == "NONE":
        resolution = "NONE"
    for host in spec.hosts:
        service = Service(
            hostname=host,
            namespace=namespace,
            ports=ports,
            name=host.split(".", 1)[0],
            mesh_external=spec.location != "MESH_INTERNAL",
            resolution=resolution,  # type: ignore[arg-type]
            source=f"ServiceEntry {namespace}/{se.metadata.name}",
        )
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
