"""Sidecar scoping: which Sidecar applies to a proxy, and which services it then sees."""

from __future__ import annotations

import pytest

from tests.unit.snapshot.conftest import hostname, proxy, snapshot
from weft.snapshot.view import sidecar_for, visible_services

ALL = sorted(
    [
        hostname("productpage", "default"),
        hostname("reviews", "default"),
        hostname("ratings", "default"),
        hostname("details", "shop"),
        hostname("payments", "shop"),
        hostname("telemetry", "istio-system"),
    ]
)


def sidecar(name: str, namespace: str, *hosts: str, selector: dict[str, str] | None = None) -> str:
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: Sidecar",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        "spec:",
    ]
    if selector is not None:
        labels = ", ".join(f"{k}: {v}" for k, v in selector.items())
        lines.append(f"  workloadSelector: {{labels: {{{labels}}}}}")
    quoted = ", ".join(f'"{h}"' for h in hosts)
    lines.append(f"  egress: [{{hosts: [{quoted}]}}]")
    return "\n".join(lines) + "\n"


def visible(snap_yaml: tuple[str, ...], namespace: str = "default", **labels: str) -> list[str]:
    snap = snapshot(*snap_yaml)
    return [s.hostname for s in visible_services(proxy(namespace, **labels), snap)]


def test_without_a_sidecar_every_service_is_visible_in_hostname_order() -> None:
    assert visible(()) == ALL


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        pytest.param(
            ("./*",),
            [
                hostname("productpage", "default"),
                hostname("ratings", "default"),
                hostname("reviews", "default"),
            ],
            id="own-namespace",
        ),
        pytest.param(("./reviews",), [hostname("reviews", "default")], id="own-namespace-short"),
        pytest.param(
            ("./reviews.default.svc.cluster.local",),
            [hostname("reviews", "default")],
            id="own-namespace-fqdn",
        ),
        pytest.param(
            ("shop/*",), [hostname("details", "shop"), hostname("payments", "shop")], id="ns-all"
        ),
        pytest.param(
            ("*/details.shop.svc.cluster.local",),
            [hostname("details", "shop")],
            id="any-namespace-host",
        ),
        pytest.param(
            ("*/*.shop.svc.cluster.local",),
            [hostname("details", "shop"), hostname("payments", "shop")],
            id="any-namespace-wildcard",
        ),
        pytest.param(("*/*",), ALL, id="everything"),
        pytest.param(("~/*",), [], id="nothing"),
        pytest.param(
            ("./reviews", "istio-system/*"),
            [hostname("reviews", "default"), hostname("telemetry", "istio-system")],
            id="union",
        ),
    ],
)
def test_egress_hosts_scope_visible_services(hosts: tuple[str, ...], expected: list[str]) -> None:
    assert visible((sidecar("default", "default", *hosts),)) == expected


def test_dot_means_the_proxys_namespace_not_the_sidecars() -> None:
    # A root-namespace default with "./*" gives every namespace its own services.
    root = sidecar("default", "istio-system", "./*")
    assert visible((root,), namespace="shop") == [
        hostname("details", "shop"),
        hostname("payments", "shop"),
    ]


def test_short_host_in_another_namespace_does_not_leak_same_named_service() -> None:
    # "shop/reviews" names reviews in shop; reviews in default stays invisible.
    assert visible((sidecar("default", "default", "shop/reviews", "shop/details"),)) == [
        hostname("details", "shop")
    ]


def test_egress_across_listeners_is_a_union() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ["./reviews"]
  - hosts: ["shop/details.shop.svc.cluster.local"]
"""
    assert visible((text,)) == [hostname("details", "shop"), hostname("reviews", "default")]


# --- which Sidecar applies -------------------------------------------------------------------

SELECTED = sidecar("productpage", "default", "./reviews", selector={"app": "productpage"})
NAMESPACE_DEFAULT = sidecar("default", "default", "./ratings")
ROOT_DEFAULT = sidecar("default", "istio-system", "shop/*")


def applied(namespace: str, labels: dict[str, str], *texts: str) -> str | None:
    sc = sidecar_for(proxy(namespace, **labels), snapshot(*texts))
    return None if sc is None else f"{sc.metadata.namespace}/{sc.metadata.name}"


def test_selector_match_beats_the_namespace_default() -> None:
    texts = (SELECTED, NAMESPACE_DEFAULT, ROOT_DEFAULT)
    assert applied("default", {"app": "productpage"}, *texts) == "default/productpage"
    assert visible(texts, app="productpage") == [hostname("reviews", "default")]


def test_namespace_default_applies_when_no_selector_matches() -> None:
    texts = (SELECTED, NAMESPACE_DEFAULT, ROOT_DEFAULT)
    assert applied("default", {"app": "reviews"}, *texts) == "default/default"
    assert visible(texts, app="reviews") == [hostname("ratings", "default")]


def test_selector_must_match_every_label() -> None:
    strict = sidecar("v2", "default", "./reviews", selector={"app": "reviews", "version": "v2"})
    assert applied("default", {"app": "reviews", "version": "v1"}, strict) is None
    assert applied("default", {"app": "reviews", "version": "v2"}, strict) == "default/v2"


def test_root_namespace_default_applies_to_namespaces_without_their_own() -> None:
    texts = (SELECTED, NAMESPACE_DEFAULT, ROOT_DEFAULT)
    assert applied("shop", {"app": "details"}, *texts) == "istio-system/default"
    assert visible(texts, namespace="shop", app="details") == [
        hostname("details", "shop"),
        hostname("payments", "shop"),
    ]


def test_namespace_default_beats_the_root_default() -> None:
    assert applied("default", {"app": "x"}, ROOT_DEFAULT, NAMESPACE_DEFAULT) == "default/default"


def test_sidecars_in_other_namespaces_do_not_apply() -> None:
    other = sidecar("default", "shop", "./*")
    selected_elsewhere = sidecar("pp", "shop", "./*", selector={"app": "productpage"})
    assert applied("default", {"app": "productpage"}, other, selected_elsewhere) is None
    assert visible((other, selected_elsewhere), app="productpage") == ALL


def test_selector_sidecar_in_the_root_namespace_is_not_a_mesh_default() -> None:
    selective_root = sidecar("pp", "istio-system", "~/*", selector={"app": "productpage"})
    assert applied("default", {"app": "productpage"}, selective_root) is None


def test_root_namespace_follows_the_snapshot() -> None:
    root = sidecar("default", "mesh-root", "./*")
    snap = snapshot(root, root_namespace="mesh-root")
    sc = sidecar_for(proxy("shop"), snap)
    assert sc is not None and sc.metadata.namespace == "mesh-root"
    assert sidecar_for(proxy("shop"), snapshot(root)) is None
