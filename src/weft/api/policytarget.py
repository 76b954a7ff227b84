"""What a security policy applies to: a label selector, or (Gateway API style) target refs."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from weft.api.base import IstioModel, LabelSelector
from weft.api.meta import DEFAULT_SECURITY_API_VERSION, SECURITY_API_VERSIONS, IstioResource


class PolicyTargetReference(IstioModel):
    """A Gateway, Service or GatewayClass a policy attaches to. Accepted, not acted on: a
    policy that uses target refs applies to no sidecar, as in Istio."""

    group: str = ""
    kind: str
    name: str
    namespace: str | None = None


class SecurityResource(IstioResource):
    """The envelope of the security.istio.io kinds."""

    api_versions: ClassVar[tuple[str, ...]] = SECURITY_API_VERSIONS

    api_version: str = DEFAULT_SECURITY_API_VERSION


class WorkloadPolicySpec(IstioModel):
    """A policy that selects workloads by label; no selector means the whole namespace."""

    selector: LabelSelector | None = None

    @property
    def match_labels(self) -> dict[str, str] | None:
        """The selector's labels, or None for a namespace-wide policy (no or empty selector)."""
        if self.selector is None or not self.selector.match_labels:
            return None
        return self.selector.match_labels


class TargetedPolicySpec(WorkloadPolicySpec):
    """A policy that may attach to a Gateway or Service by reference instead of a selector."""

    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)

    @property
    def has_target_refs(self) -> bool:
        return self.target_ref is not None or bool(self.target_refs)
