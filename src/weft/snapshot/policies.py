"""Which security policies apply to a workload, with Istio's scoping and precedence.

Istio breaks ties between policies of the same level by creation time, oldest first. Weft
has no creation time for config from files, so the first by name (then namespace) wins; the
snapshot already holds each kind sorted that way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from weft.api import AuthorizationPolicy, MeshConfig, PeerAuthentication, RequestAuthentication
from weft.api.peerauthentication import MtlsMode
from weft.api.policytarget import WorkloadPolicySpec
from weft.snapshot.snapshot import Snapshot

PeerMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]
DEFAULT_PEER_MODE: PeerMode = "PERMISSIVE"


def _selects(spec: WorkloadPolicySpec, labels: Mapping[str, str]) -> bool:
    wanted = spec.match_labels
    return wanted is not None and all(labels.get(k) == v for k, v in wanted.items())


def _oldest(policies: Sequence[PeerAuthentication]) -> PeerAuthentication | None:
    return policies[0] if policies else None


def _mode_of(policy: PeerAuthentication | None) -> MtlsMode:
    if policy is None or policy.spec.mtls is None:
        return "UNSET"
    return policy.spec.mtls.mode


@dataclass(frozen=True)
class SecurityPolicies:
    """Every security policy of the mesh and what their translation needs besides: the mesh
    config (trust domain, root namespace, extension providers) and fetched JWKS documents."""

    peer_authentications: tuple[PeerAuthentication, ...]
    authorization_policies: tuple[AuthorizationPolicy, ...]
    request_authentications: tuple[RequestAuthentication, ...]
    jwks: Mapping[str, str]
    mesh: MeshConfig

    @classmethod
    def of(cls, snap: Snapshot) -> SecurityPolicies:
        return cls(
            snap.peer_authentications,
            snap.authorization_policies,
            snap.request_authentications,
            snap.jwks,
            snap.mesh,
        )

    @property
    def root_namespace(self) -> str:
        return self.mesh.root_namespace


def peer_mode(snap: Snapshot, namespace: str, labels: Mapping[str, str], port: int) -> PeerMode:
    """`peer_mode_in` with the snapshot's PeerAuthentications."""
    return peer_mode_in(snap.peer_authentications, snap.root_namespace, namespace, labels, port)


def peer_mode_in(
    policies: Sequence[PeerAuthentication],
    root: str,
    namespace: str,
    labels: Mapping[str, str],
    port: int,
) -> PeerMode:
    """The mTLS mode a workload's inbound `port` (the workload's own port) accepts.

    Most specific wins: the port-level setting of the workload's selector policy, that
    policy's own mode, the namespace's policy, the mesh's (root namespace) policy, and
    PERMISSIVE. UNSET at any level defers to the next one out. As in Istio, a root-namespace
    policy with a selector is no level at all: it is ignored.
    """
    mesh = [p for p in policies if p.metadata.namespace == root and p.spec.match_labels is None]
    in_namespace = [p for p in policies if p.metadata.namespace == namespace]
    namespace_wide = [p for p in in_namespace if p.spec.match_labels is None]
    workload = [p for p in in_namespace if namespace != root and _selects(p.spec, labels)]

    mode: MtlsMode = "UNSET"
    for level in (mesh, namespace_wide, workload):
        level_mode = _mode_of(_oldest(level))
        if level_mode != "UNSET":
            mode = level_mode
    chosen = _oldest(workload)
    if chosen is not None:
        port_level = chosen.spec.port_level_mtls.get(port)
        if port_level is not None and port_level.mode != "UNSET":
            mode = port_level.mode
    return DEFAULT_PEER_MODE if mode == "UNSET" else mode


_P = TypeVar("_P", AuthorizationPolicy, RequestAuthentication)


def _applicable(
    policies: Sequence[_P], root: str, namespace: str, labels: Mapping[str, str]
) -> list[_P]:
    """Root-namespace policies apply in every namespace (a selector still has to match);
    others in their own namespace. Policies attached by targetRef apply to no sidecar."""
    found: list[_P] = []
    for policy in policies:
        spec = policy.spec
        if spec.has_target_refs:
            continue
        policy_ns = policy.metadata.namespace
        if policy_ns != root and policy_ns != namespace:
            continue
        if spec.match_labels is None or _selects(spec, labels):
            found.append(policy)
    # Mesh-wide policies first, then the namespace's, each by name.
    return sorted(found, key=lambda p: (p.metadata.namespace != root, p.metadata.name))


def authorization_policies_for(
    policies: Snapshot | SecurityPolicies, namespace: str, labels: Mapping[str, str]
) -> list[AuthorizationPolicy]:
    """Every AuthorizationPolicy that applies to the workload, of every action."""
    return _applicable(policies.authorization_policies, policies.root_namespace, namespace, labels)


def request_authentications_for(
    policies: Snapshot | SecurityPolicies, namespace: str, labels: Mapping[str, str]
) -> list[RequestAuthentication]:
    """Every RequestAuthentication that applies to the workload; their JWT rules all apply."""
    return _applicable(policies.request_authentications, policies.root_namespace, namespace, labels)
