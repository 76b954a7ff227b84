"""Which DestinationRule and VirtualServices apply to a host, as Istio looks them up."""

from __future__ import annotations

from tests.unit.snapshot.conftest import hostname, snapshot

REVIEWS = hostname("reviews", "default")


def destination_rule(name: str, namespace: str, host: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  host: "{host}"
"""


def virtual_service(
    name: str, namespace: str, hosts: list[str], gateways: list[str] | None = None
) -> str:
    text = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: {hosts}
  http:
  - route: [{{destination: {{host: reviews.default.svc.cluster.local}}}}]
"""
    if gateways is not None:
        text += f"  gateways: {gateways}\n"
    return text


def rule_for(host: str, client_namespace: str, *texts: str) -> str | None:
    dr = snapshot(*texts).destination_rule_for(host, client_namespace)
    return None if dr is None else f"{dr.metadata.namespace}/{dr.metadata.name}"


# --- DestinationRule --------------------------------------------------------------------------

CLIENT_NS = destination_rule("client", "shop", REVIEWS)
SERVICE_NS = destination_rule("service", "default", "reviews")
ROOT_NS = destination_rule("root", "istio-system", REVIEWS)


def test_client_namespace_rule_wins() -> None:
    assert rule_for(REVIEWS, "shop", CLIENT_NS, SERVICE_NS, ROOT_NS) == "shop/client"


def test_service_namespace_rule_applies_to_other_clients() -> None:
    assert rule_for(REVIEWS, "other", CLIENT_NS, SERVICE_NS, ROOT_NS) == "default/service"
    assert rule_for(REVIEWS, "default", CLIENT_NS, SERVICE_NS, ROOT_NS) == "default/service"


def test_root_namespace_rule_is_the_last_resort() -> None:
    assert rule_for(REVIEWS, "other", CLIENT_NS, ROOT_NS) == "istio-system/root"


def test_no_rule_for_an_uncovered_host() -> None:
    assert rule_for(hostname("ratings", "default"), "default", CLIENT_NS, SERVICE_NS) is None


def test_short_host_is_resolved_in_the_rules_namespace() -> None:
    # "reviews" in shop means reviews.shop..., so it says nothing about reviews.default.
    shop_short = destination_rule("short", "shop", "reviews")
    assert rule_for(REVIEWS, "shop", shop_short) is None


def test_exact_host_beats_wildcard_in_one_namespace() -> None:
    # The wildcard sorts first by name; the exact host must still win.
    wildcard = destination_rule("a-wildcard", "default", "*.default.svc.cluster.local")
    exact = destination_rule("z-exact", "default", REVIEWS)
    assert rule_for(REVIEWS, "default", wildcard, exact) == "default/z-exact"
    assert rule_for(hostname("ratings", "default"), "default", wildcard, exact) == (
        "default/a-wildcard"
    )


def test_wildcard_in_client_namespace_beats_exact_in_service_namespace() -> None:
    client_wildcard = destination_rule("all", "shop", "*.svc.cluster.local")
    assert rule_for(REVIEWS, "shop", client_wildcard, SERVICE_NS) == "shop/all"


def test_most_specific_wildcard_wins_in_one_namespace() -> None:
    broad = destination_rule("a-broad", "default", "*.cluster.local")
    narrow = destination_rule("b-narrow", "default", "*.default.svc.cluster.local")
    assert rule_for(REVIEWS, "default", broad, narrow) == "default/b-narrow"


def test_root_namespace_rules_follow_the_snapshots_root() -> None:
    rule = destination_rule("mesh", "mesh-root", "*.cluster.local")
    snap = snapshot(rule, root_namespace="mesh-root")
    found = snap.destination_rule_for(REVIEWS, "other")
    assert found is not None and found.metadata.name == "mesh"
    assert snapshot(rule).destination_rule_for(REVIEWS, "other") is None


# --- VirtualService ----------------------------------------------------------------------------


def vs_names(host: str, *texts: str, gateway: str = "mesh") -> list[str]:
    return [
        f"{vs.metadata.namespace}/{vs.metadata.name}"
        for vs in snapshot(*texts).virtual_services_for(host, gateway)
    ]


def test_virtual_service_without_gateways_applies_to_sidecars() -> None:
    assert vs_names(REVIEWS, virtual_service("reviews", "default", ["reviews"])) == [
        "default/reviews"
    ]


def test_virtual_service_bound_only_to_a_gateway_does_not_apply_to_sidecars() -> None:
    text = virtual_service("edge", "default", ["reviews"], gateways=["bookinfo-gateway"])
    assert vs_names(REVIEWS, text) == []
    assert vs_names(REVIEWS, text, gateway="bookinfo-gateway") == ["default/edge"]


def test_virtual_service_bound_to_mesh_and_a_gateway_applies_to_both() -> None:
    text = virtual_service("both", "default", ["reviews"], gateways=["bookinfo-gateway", "mesh"])
    assert vs_names(REVIEWS, text) == ["default/both"]
    assert vs_names(REVIEWS, text, gateway="bookinfo-gateway") == ["default/both"]


def test_virtual_service_without_gateways_does_not_apply_to_gateways() -> None:
    text = virtual_service("reviews", "default", ["reviews"])
    assert vs_names(REVIEWS, text, gateway="bookinfo-gateway") == []


def test_short_hosts_resolve_in_the_virtual_services_namespace() -> None:
    text = virtual_service("reviews", "shop", ["reviews"])
    assert vs_names(REVIEWS, text) == []
    assert vs_names(hostname("reviews", "shop"), text) == ["shop/reviews"]


def test_fully_qualified_and_wildcard_hosts_apply_across_namespaces() -> None:
    exact = virtual_service("exact", "shop", [REVIEWS])
    wildcard = virtual_service("wild", "shop", ["*.default.svc.cluster.local"])
    assert vs_names(REVIEWS, exact, wildcard) == ["shop/exact", "shop/wild"]
    assert vs_names(hostname("details", "shop"), exact, wildcard) == []


def test_unrelated_virtual_services_are_not_returned() -> None:
    text = virtual_service("ratings", "default", ["ratings"])
    assert vs_names(REVIEWS, text) == []
