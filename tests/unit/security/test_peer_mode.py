"""Which mTLS mode a workload port accepts: Istio's PeerAuthentication precedence."""

from __future__ import annotations

from tests.unit.security.conftest import policy, snapshot
from weft.api import MeshConfig
from weft.snapshot.policies import peer_mode

APP = {"app": "reviews", "version": "v1"}


def pa(name: str, spec: str, namespace: str = "foo") -> str:
    return policy(name, spec, namespace=namespace, kind="PeerAuthentication")


def test_no_policy_is_permissive() -> None:
    assert peer_mode(snapshot(""), "foo", APP, 9080) == "PERMISSIVE"


def test_mesh_wide_policy_applies_in_every_namespace() -> None:
    snap = snapshot(pa("default", "{mtls: {mode: STRICT}}", namespace="istio-system"))
    assert peer_mode(snap, "foo", APP, 9080) == "STRICT"
    assert peer_mode(snap, "bar", {}, 1) == "STRICT"


def test_namespace_policy_beats_mesh_policy() -> None:
    snap = snapshot(
        pa("default", "{mtls: {mode: STRICT}}", namespace="istio-system")
        + pa("default", "{mtls: {mode: DISABLE}}")
    )
    assert peer_mode(snap, "foo", APP, 9080) == "DISABLE"
    assert peer_mode(snap, "bar", APP, 9080) == "STRICT"


def test_workload_policy_beats_namespace_policy_when_its_selector_matches() -> None:
    snap = snapshot(
        pa("default", "{mtls: {mode: STRICT}}")
        + pa("reviews", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}}")
    )
    assert peer_mode(snap, "foo", APP, 9080) == "PERMISSIVE"
    assert peer_mode(snap, "foo", {"app": "ratings"}, 9080) == "STRICT"


def test_port_level_setting_beats_the_workload_mode_on_that_port_only() -> None:
    snap = snapshot(
        pa(
            "reviews",
            "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT},"
            " portLevelMtls: {8080: {mode: DISABLE}}}",
        )
    )
    assert peer_mode(snap, "foo", APP, 8080) == "DISABLE"
    assert peer_mode(snap, "foo", APP, 9080) == "STRICT"


def test_unset_inherits_from_the_next_level_out() -> None:
    snap = snapshot(
        pa("default", "{mtls: {mode: STRICT}}", namespace="istio-system")
        + pa("default", "{mtls: {mode: UNSET}}")
        + pa(
            "reviews",
            "{selector: {matchLabels: {app: reviews}},"
            " portLevelMtls: {8080: {mode: UNSET}, 8081: {mode: PERMISSIVE}}}",
        )
    )
    # Workload policy without mtls, namespace UNSET: the mesh's STRICT shows through.
    assert peer_mode(snap, "foo", APP, 8080) == "STRICT"
    assert peer_mode(snap, "foo", APP, 9080) == "STRICT"
    assert peer_mode(snap, "foo", APP, 8081) == "PERMISSIVE"


def test_unset_everywhere_is_permissive() -> None:
    snap = snapshot(pa("default", "{}", namespace="istio-system") + pa("default", "{}"))
    assert peer_mode(snap, "foo", APP, 9080) == "PERMISSIVE"


def test_same_level_tie_goes_to_the_first_name() -> None:
    # Istio picks the oldest; without creation times, the first by name stands in for it.
    snap = snapshot(pa("b-disable", "{mtls: {mode: DISABLE}}") + pa("a-strict", "{mtls: {}}"))
    assert peer_mode(snap, "foo", APP, 9080) == "PERMISSIVE"  # a-strict is UNSET: no inherit
    snap = snapshot(pa("b-disable", "{mtls: {mode: DISABLE}}") + pa("a", "{mtls: {mode: STRICT}}"))
    assert peer_mode(snap, "foo", APP, 9080) == "STRICT"


def test_selector_policy_in_the_root_namespace_is_ignored() -> None:
    snap = snapshot(
        pa("r", "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}", "istio-system")
    )
    assert peer_mode(snap, "foo", APP, 9080) == "PERMISSIVE"


def test_empty_selector_means_namespace_wide() -> None:
    snap = snapshot(pa("default", "{selector: {matchLabels: {}}, mtls: {mode: STRICT}}"))
    assert peer_mode(snap, "foo", {"app": "anything"}, 9080) == "STRICT"


def test_root_namespace_comes_from_the_mesh_config() -> None:
    text = pa("default", "{mtls: {mode: STRICT}}", namespace="mesh-root")
    assert peer_mode(snapshot(text), "foo", APP, 9080) == "PERMISSIVE"
    snap = snapshot(text, mesh=MeshConfig(root_namespace="mesh-root"))
    assert snap.root_namespace == "mesh-root"
    assert peer_mode(snap, "foo", APP, 9080) == "STRICT"
