"""PeerAuthentication: whether a workload accepts plain text, mutual TLS, or both."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import IstioModel
from weft.api.policytarget import SecurityResource, WorkloadPolicySpec

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


class PeerAuthenticationMutualTLS(IstioModel):
    mode: MtlsMode = "UNSET"


class PeerAuthenticationSpec(WorkloadPolicySpec):
    mtls: PeerAuthenticationMutualTLS | None = None
    # Keys are workload ports; checked by validation so a bad key gets a readable path.
    port_level_mtls: dict[int, PeerAuthenticationMutualTLS] = Field(default_factory=dict)


class PeerAuthentication(SecurityResource):
    kind: Literal["PeerAuthentication"] = "PeerAuthentication"
    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)
