"""What an agent and the control plane's registry say to each other: registration,
heartbeats, and the answers that carry the workload's entry and mesh credentials."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from weft.api.base import invalid
from weft.api.workload import ReadinessProbe, WorkloadEntry
from weft.contract.names import (
    DnsLabel,
    DnsSubdomain,
    EmptyIsNone,
    IpAddress,
    Labels,
    PortName,
    PortNumber,
    PortProtocol,
    ShortText,
)
from weft.contract.wire import WireModel

_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT.fullmatch(value):
        raise invalid(
            f"{value!r} is not a certificate fingerprint", "use 16 to 64 lower-case hex digits"
        )
    return value


class RegistrationPort(WireModel):
    """A service port and the port the workload is reached on for it (its sidecar's inbound)."""

    service_port: PortNumber
    target_port: PortNumber
    name: PortName = "http"
    protocol: PortProtocol = "HTTP"


class Registration(WireModel):
    """An agent asks to be in the mesh: the WorkloadEntry it stands for, auto-registered.

    Also the form the registry keeps each workload in across restarts.
    """

    name: DnsSubdomain
    namespace: DnsLabel = "default"
    service: DnsLabel
    address: IpAddress = "127.0.0.1"
    ports: list[RegistrationPort] = Field(min_length=1)
    labels: Labels = Field(default_factory=dict)
    service_account: DnsSubdomain | None = None  # the service's name unless given
    healthy: bool = True
    group: Annotated[DnsSubdomain | None, EmptyIsNone] = None  # a WorkloadGroup to follow

    @model_validator(mode="after")
    def _distinct_ports(self) -> Registration:
        for attr, what in (("service_port", "servicePort"), ("name", "name")):
            seen = [getattr(p, attr) for p in self.ports]
            twice = [v for i, v in enumerate(seen) if v in seen[:i]]
            if twice:
                raise ValueError(f"two ports have {what} {twice[0]!r}: give each its own")
        return self

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class WorkloadRef(WireModel):
    """A registered workload, as named in the admin API's paths."""

    namespace: DnsLabel
    name: DnsSubdomain


class Heartbeat(WireModel):
    """An agent is alive; `healthy` is its app's readiness, `certRoot` the root its
    certificate chains to (a root rotation finishes once every workload left the old one)."""

    healthy: bool
    cert_root: Annotated[str, AfterValidator(_fingerprint)] | None = None


class MeshCredentials(WireModel):
    """What an agent needs to get its workload certificate: where the CA is, whom to trust,
    and a short-lived token binding it to the workload's identity."""

    ca_address: str
    ca_server_name: str
    trust_domain: str
    trust_bundle: list[str]
    signing_root: str  # the fingerprint of the root the CA signs with now
    credential: str
    identity: str  # the SPIFFE id the certificate will carry


class RegistrationAnswer(WireModel):
    """The WorkloadEntry the registration made, the probe its group asks for, credentials."""

    registered: ShortText
    entry: WorkloadEntry
    probe: ReadinessProbe | None = None
    credentials: MeshCredentials | None = None


class HeartbeatAnswer(WireModel):
    """Each heartbeat refreshes the credential and the trust bundle (root rotation)."""

    credentials: MeshCredentials | None = None


class RootRotation(WireModel):
    """One step of a root rotation, asked for by `weft ca rotate-root`."""

    step: Literal["begin", "activate", "finish"]
    force: bool = False
