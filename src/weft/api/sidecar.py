"""Sidecar: narrows what one workload's proxy listens on and which services it can reach."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import Destination, IstioModel, Port, WorkloadSelector
from weft.api.gateway import ServerTLSSettings
from weft.api.meta import IstioResource
from weft.api.trafficpolicy import ConnectionPoolSettings

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]


class IstioIngressListener(IstioModel):
    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode = "DEFAULT"
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


class IstioEgressListener(IstioModel):
    port: Port | None = None
    bind: str | None = None
    capture_mode: CaptureMode = "DEFAULT"
    hosts: list[str] = Field(default_factory=list)  # "namespace/dnsName"


class OutboundTrafficPolicy(IstioModel):
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "REGISTRY_ONLY"
    egress_proxy: Destination | None = None


class SidecarSpec(IstioModel):
    workload_selector: WorkloadSelector | None = None
    ingress: list[IstioIngressListener] = Field(default_factory=list)
    egress: list[IstioEgressListener] = Field(default_factory=list)
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    inbound_connection_pool: ConnectionPoolSettings | None = None


class Sidecar(IstioResource):
    kind: Literal["Sidecar"] = "Sidecar"
    spec: SidecarSpec = Field(default_factory=SidecarSpec)
