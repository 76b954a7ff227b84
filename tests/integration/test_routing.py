"""Istio routing through real Envoy sidecars: defaults, subsets, splits, header matches."""

from __future__ import annotations

import pytest

from tests.integration.conftest import NETWORKING, REVIEWS, MeshClient, apply_and_sync
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration


async def test_without_rules_every_version_answers(bookinfo: MeshClient) -> None:
    counts = await bookinfo.versions(REVIEWS, 60)
    assert set(counts) == {"v1", "v2", "v3"}, counts


async def test_all_traffic_to_v1(mesh: LocalMesh, bookinfo: MeshClient) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    assert await bookinfo.versions(REVIEWS, 40) == {"v1": 40}
    # The same rule seen from another caller, by another name for the same service.
    assert await bookinfo.versions(
        "http://reviews.default.svc.cluster.local:9080/reviews/1", 10
    ) == {"v1": 10}


async def test_weighted_split(mesh: LocalMesh, bookinfo: MeshClient) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-80-20.yaml")
    n = 300
    counts = await bookinfo.versions(REVIEWS, n)
    assert set(counts) <= {"v1", "v3"}, counts
    # 80/20 over 300 requests: 3.5 standard deviations either side.
    assert abs(100 * counts.get("v1", 0) / n - 80) < 8, counts


async def test_header_match_routes_one_user(mesh: LocalMesh, bookinfo: MeshClient) -> None:
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    assert await bookinfo.versions(REVIEWS, 20, {"end-user": "jason"}) == {"v2": 20}
    assert await bookinfo.versions(REVIEWS, 20, {"end-user": "ann"}) == {"v1": 20}
    assert await bookinfo.versions(REVIEWS, 20) == {"v1": 20}


async def test_headers_propagate_through_productpage(mesh: LocalMesh, bookinfo: MeshClient) -> None:
    """productpage forwards end-user, so the rule applies at its sidecar, two hops in."""
    await apply_and_sync(mesh, NETWORKING / "virtual-service-reviews-jason-v2.yaml")
    for _ in range(10):
        status, _, body = await bookinfo.get(
            "http://productpage:9080/productpage", {"end-user": "jason"}
        )
        assert status == 200
        assert '"version": "v2"' in body


async def test_uri_match_and_direct_response(mesh: LocalMesh, bookinfo: MeshClient,
                                             tmp_path: object) -> None:  # fmt: skip
    from pathlib import Path

    rule = Path(str(tmp_path)) / "ratings-vs.yaml"
    rule.write_text(
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /ratings/9}}]
    directResponse: {status: 503, body: {string: "ratings for 9 are closed"}}
  - match: [{uri: {regex: "/ratings/[0-8]"}}]
    route: [{destination: {host: ratings}}]
"""
    )
    await apply_and_sync(mesh, rule)
    status, _, body = await bookinfo.get("http://ratings:9080/ratings/9")
    assert (status, body) == (503, "ratings for 9 are closed")
    status, version, _ = await bookinfo.get("http://ratings:9080/ratings/3")
    assert (status, version) == (200, "v1")
    # No route matches: Envoy answers 404, as Istio does.
    status, _, _ = await bookinfo.get("http://ratings:9080/other")
    assert status == 404


async def test_unknown_host_gets_a_clear_answer(bookinfo: MeshClient) -> None:
    status, _, body = await bookinfo.get("http://nosuchservice:9080/")
    assert status == 502
    assert "no service in the mesh" in body
