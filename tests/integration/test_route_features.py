"""Route features through real Envoy sidecars, as a client sees them: binary direct responses,
redirect ports, mirrored requests, consistent hashing per subset, delegate VirtualServices."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import REVIEWS, MeshClient, apply_and_sync
from weft.cli.mesh import LocalMesh

pytestmark = pytest.mark.integration

STARS = b"\x00\x01\xff\xfe stars"


def rule(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


async def raw_get(client: MeshClient, url: str) -> tuple[int, bytes, str]:
    """(status, body bytes, Location) without following redirects."""
    async with client.session.get(url, proxy=client.proxy, allow_redirects=False) as resp:
        return resp.status, await resp.read(), resp.headers.get("Location", "")


async def test_binary_direct_responses_and_redirect_ports(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    encoded = base64.b64encode(STARS).decode()
    await apply_and_sync(
        mesh,
        rule(
            tmp_path,
            "ratings",
            f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ratings}}
spec:
  hosts: [ratings]
  http:
  - match: [{{uri: {{exact: /stars}}}}]
    directResponse: {{status: 200, body: {{bytes: "{encoded}"}}}}
  - match: [{{uri: {{exact: /moved}}}}]
    redirect: {{uri: /ratings/0, authority: details, derivePort: FROM_REQUEST_PORT}}
  - match: [{{uri: {{exact: /plain}}}}]
    redirect: {{uri: /ratings/0, derivePort: FROM_PROTOCOL_DEFAULT}}
  - match: [{{uri: {{exact: /secure}}}}]
    redirect: {{uri: /ratings/0, scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}}
  - route: [{{destination: {{host: ratings}}}}]
""",
        ),
    )
    assert await raw_get(bookinfo, "http://ratings:9080/stars") == (200, STARS, "")
    # The port of the request (9080), kept even though the authority changes.
    status, _, location = await raw_get(bookinfo, "http://ratings:9080/moved")
    assert (status, location) == (301, "http://details:9080/ratings/0")
    # The scheme's own port, not the request's 9080.
    _, _, location = await raw_get(bookinfo, "http://ratings:9080/plain")
    assert location == "http://ratings:80/ratings/0"
    _, _, location = await raw_get(bookinfo, "http://ratings:9080/secure")
    assert location == "https://ratings:443/ratings/0"


def admin_port(mesh: LocalMesh, workload: str) -> int:
    args = mesh.specs[workload].extra_args
    return int(args[args.index("--admin-port") + 1])


async def inbound_requests(mesh: LocalMesh, workload: str) -> int:
    """How many requests the workload's sidecar has passed on to the application."""
    url = f"http://127.0.0.1:{admin_port(mesh, workload)}/stats?format=json"
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.get(url, params={"filter": r"^cluster\.inbound\|"}) as resp,
    ):
        stats = (await resp.json())["stats"]
    return sum(
        int(s.get("value", 0)) for s in stats if s.get("name", "").endswith(".upstream_rq_total")
    )


async def test_a_mirror_named_by_short_name_reaches_the_mirror_service(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    # reviews v1 never calls ratings: whatever ratings receives was mirrored.
    await apply_and_sync(
        mesh,
        rule(
            tmp_path,
            "reviews",
            """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: ratings}
""",
        ),
    )
    before = await inbound_requests(mesh, "ratings-v1")
    assert await bookinfo.versions(REVIEWS, 10) == {"v1": 10}
    deadline = time.monotonic() + 10
    mirrored = 0
    while time.monotonic() < deadline:  # mirrored requests are sent alongside, not awaited
        mirrored = await inbound_requests(mesh, "ratings-v1") - before
        if mirrored >= 10:
            break
        await asyncio.sleep(0.05)
    assert mirrored == 10


async def test_consistent_hash_on_a_subset_keeps_each_user_on_one_instance(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    # One subset with three instances (every version); only the subset hashes, by user.
    await apply_and_sync(
        mesh,
        rule(
            tmp_path,
            "hashed",
            """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - name: everyone
    labels: {app: reviews}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: everyone}}]
""",
        ),
    )
    seen: dict[str, set[str]] = {}
    for user in (f"user-{i}" for i in range(8)):
        counts = await bookinfo.versions(REVIEWS, 8, {"x-user": user})
        seen[user] = set(counts)
    assert all(len(versions) == 1 for versions in seen.values()), seen
    # Users spread over the instances: the hash is by user, not one instance for all.
    assert len(set().union(*seen.values())) >= 2, seen


async def test_a_delegate_virtual_service_routes_and_its_changes_reach_the_sidecar(
    mesh: LocalMesh, bookinfo: MeshClient, tmp_path: Path
) -> None:
    root = rule(
        tmp_path,
        "root",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    delegate: {name: reviews-for-jason}
  - route: [{destination: {host: reviews, subset: v1}}]
""",
    )

    def delegate(subset: str) -> Path:
        return rule(
            tmp_path,
            f"delegate-{subset}",
            f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews-for-jason}}
spec:
  http:
  - match: [{{uri: {{prefix: /reviews}}}}]
    route: [{{destination: {{host: reviews, subset: {subset}}}}}]
""",
        )

    await apply_and_sync(mesh, root)
    await apply_and_sync(mesh, delegate("v2"))
    jason = {"end-user": "jason"}
    assert await bookinfo.versions(REVIEWS, 10, jason) == {"v2": 10}
    assert await bookinfo.versions(REVIEWS, 10) == {"v1": 10}
    # Only the delegate changes: the sidecar that sees its root gets the new routes.
    await apply_and_sync(mesh, delegate("v3"))
    assert await bookinfo.versions(REVIEWS, 10, jason) == {"v3": 10}
