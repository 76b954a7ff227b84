"""ServiceEntry: adds a service (external, or internal but outside Kubernetes) to the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import IstioModel, PortNumber, PortProtocol, WorkloadSelector
from weft.api.meta import IstioResource
from weft.api.workload import WorkloadEntrySpec


class ServicePort(IstioModel):
    number: PortNumber
    protocol: PortProtocol | None = None
    name: str | None = None
    target_port: PortNumber | None = None


class ServiceEntrySpec(IstioModel):
    hosts: list[str] = Field(default_factory=list)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"] = "MESH_EXTERNAL"
    resolution: Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"] = "NONE"
    endpoints: list[WorkloadEntrySpec] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)


class ServiceEntry(IstioResource):
    kind: Literal["ServiceEntry"] = "ServiceEntry"
    spec: ServiceEntrySpec = Field(default_factory=ServiceEntrySpec)
