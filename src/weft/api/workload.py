"""WorkloadEntry and WorkloadGroup: workloads that are not Kubernetes pods (VMs, processes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import IstioModel, NonNegativeInt, PortNumber
from weft.api.meta import IstioResource


class WorkloadEntrySpec(IstioModel):
    """One workload instance; also the shape of ServiceEntry endpoints and group templates."""

    address: str | None = None
    ports: dict[str, PortNumber] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: NonNegativeInt = 0
    service_account: str | None = None


class WorkloadEntry(IstioResource):
    kind: Literal["WorkloadEntry"] = "WorkloadEntry"
    spec: WorkloadEntrySpec = Field(default_factory=WorkloadEntrySpec)


class HTTPHeader(IstioModel):
    name: str
    value: str = ""


class HTTPHealthCheckConfig(IstioModel):
    path: str | None = None
    port: PortNumber
    host: str | None = None
    scheme: str | None = None
    http_headers: list[HTTPHeader] = Field(default_factory=list)


class TCPHealthCheckConfig(IstioModel):
    host: str | None = None
    port: PortNumber


class ExecHealthCheckConfig(IstioModel):
    command: list[str] = Field(default_factory=list)


class GrpcHealthCheckConfig(IstioModel):
    port: PortNumber
    service: str | None = None


class ReadinessProbe(IstioModel):
    """How the agent decides the workload is ready; defaults follow Istio's."""

    initial_delay_seconds: NonNegativeInt = 0
    timeout_seconds: NonNegativeInt = 1
    period_seconds: NonNegativeInt = 10
    success_threshold: NonNegativeInt = 1
    failure_threshold: NonNegativeInt = 3
    http_get: HTTPHealthCheckConfig | None = None
    tcp_socket: TCPHealthCheckConfig | None = None
    exec: ExecHealthCheckConfig | None = None
    grpc: GrpcHealthCheckConfig | None = None


class WorkloadGroupMeta(IstioModel):
    """Labels and annotations stamped on every WorkloadEntry made from the group."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WorkloadGroupSpec(IstioModel):
    metadata: WorkloadGroupMeta | None = None
    template: WorkloadEntrySpec = Field(default_factory=WorkloadEntrySpec)
    probe: ReadinessProbe | None = None


class WorkloadGroup(IstioResource):
    kind: Literal["WorkloadGroup"] = "WorkloadGroup"
    spec: WorkloadGroupSpec = Field(default_factory=WorkloadGroupSpec)
