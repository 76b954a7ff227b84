"""Which AuthorizationPolicies and RequestAuthentications apply to a workload."""

from __future__ import annotations

from collections.abc import Sequence

from tests.unit.security.conftest import policy, snapshot
from weft.api import AuthorizationPolicy, MeshConfig, RequestAuthentication
from weft.snapshot.policies import authorization_policies_for, request_authentications_for

POLICIES = (
    policy("mesh-wide", "{rules: [{}]}", namespace="istio-system")
    + policy("mesh-reviews", "{selector: {matchLabels: {app: reviews}}}", namespace="istio-system")
    + policy("foo-wide", "{action: DENY, rules: [{}]}")
    + policy("foo-reviews", "{selector: {matchLabels: {app: reviews}}}")
    + policy("foo-ratings", "{selector: {matchLabels: {app: ratings}}}")
    + policy("bar-wide", "{}", namespace="bar")
    + policy("gateway", "{targetRefs: [{kind: Gateway, name: ingress}]}")
)


def names(found: Sequence[AuthorizationPolicy | RequestAuthentication]) -> list[str]:
    return [f"{p.metadata.namespace}/{p.metadata.name}" for p in found]


def test_mesh_namespace_and_selected_policies_apply_mesh_first() -> None:
    found = authorization_policies_for(snapshot(POLICIES), "foo", {"app": "reviews"})
    assert names(found) == [
        "istio-system/mesh-reviews",
        "istio-system/mesh-wide",
        "foo/foo-reviews",
        "foo/foo-wide",
    ]


def test_other_namespaces_and_other_workloads_are_left_out() -> None:
    snap = snapshot(POLICIES)
    assert names(authorization_policies_for(snap, "bar", {"app": "details"})) == [
        "istio-system/mesh-wide",
        "bar/bar-wide",
    ]
    # A root-namespace selector matches workloads in every namespace.
    assert "istio-system/mesh-reviews" in names(
        authorization_policies_for(snap, "bar", {"app": "reviews"})
    )


def test_target_ref_policies_apply_to_no_sidecar() -> None:
    found = authorization_policies_for(snapshot(POLICIES), "foo", {"app": "anything"})
    assert "foo/gateway" not in names(found)


def test_root_namespace_follows_the_mesh_config() -> None:
    snap = snapshot(POLICIES, mesh=MeshConfig(root_namespace="bar"))
    assert names(authorization_policies_for(snap, "foo", {})) == ["bar/bar-wide", "foo/foo-wide"]


def test_request_authentications_are_selected_the_same_way() -> None:
    def ra(name: str, spec: str, namespace: str = "foo") -> str:
        return policy(name, spec, namespace=namespace, kind="RequestAuthentication")

    rule = "jwtRules: [{issuer: a, jwksUri: 'https://a/keys'}]"
    snap = snapshot(
        ra("mesh", "{" + rule + "}", namespace="istio-system")
        + ra("reviews", "{selector: {matchLabels: {app: reviews}}, " + rule + "}")
        + ra("other", "{" + rule + "}", namespace="bar")
    )
    assert names(request_authentications_for(snap, "foo", {"app": "reviews"})) == [
        "istio-system/mesh",
        "foo/reviews",
    ]
    assert names(request_authentications_for(snap, "foo", {"app": "ratings"})) == [
        "istio-system/mesh"
    ]


def test_snapshot_holds_each_security_kind_sorted() -> None:
    text = POLICIES + policy("default", "{mtls: {mode: STRICT}}", kind="PeerAuthentication")
    snap = snapshot(text)
    assert len(snap.authorization_policies) == 7
    assert [p.metadata.name for p in snap.authorization_policies][:2] == ["bar-wide", "foo-ratings"]
    assert [p.metadata.name for p in snap.peer_authentications] == ["default"]
    assert snap.request_authentications == ()
    assert snap.mesh == MeshConfig()
