"""A real mesh per test: control plane and `weft run` workloads as processes, real Envoy."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from weft.agent.ports import free_port
from weft.cli.mesh import LocalMesh, WorkloadSpec

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NETWORKING = SAMPLES / "bookinfo" / "networking"
REVIEWS = "http://reviews:9080/reviews/0"

# Valid for Istio's schema, but RE2 (Envoy) refuses a repetition above 1000: Envoy NACKs it.
# Were it applied, reviews would answer from v2 only.
BAD_REGEX_RULE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: "/reviews/x{1001}"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v2}}]
"""


def bad_regex_rule(directory: Path) -> Path:
    """A file holding BAD_REGEX_RULE, to apply."""
    path = directory / "bad-regex.yaml"
    path.write_text(BAD_REGEX_RULE)
    return path


def bookinfo_spec(service: str, version: str = "v1", **kwargs: object) -> WorkloadSpec:
    spec = WorkloadSpec(service, version, **kwargs)  # type: ignore[arg-type]
    # A known Envoy admin port lets tests read the sidecar's own state.
    spec.extra_args = ["--admin-port", str(free_port())]
    spec.command = [sys.executable, str(SAMPLES / "bookinfo" / "app.py"), service]
    spec.env = {"SERVICE_VERSION": version}
    return spec


class MeshClient:
    """Sends requests the way an app does: through one workload's sidecar as HTTP_PROXY."""

    def __init__(self, mesh: LocalMesh, via: str) -> None:
        self.mesh = mesh
        self.via = via
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.mesh.specs[self.via].proxy_port}"

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, x-service-version or '', body)."""
        async with self.session.get(url, headers=headers or {}, proxy=self.proxy) as resp:
            body = await resp.text()
            return resp.status, resp.headers.get("x-service-version", ""), body

    async def versions(
        self, url: str, n: int, headers: dict[str, str] | None = None
    ) -> dict[str, int]:
        """How many of n requests each version answered; failures count under 'HTTP <status>'."""
        counts: dict[str, int] = {}
        for _ in range(n):
            status, version, _ = await self.get(url, headers)
            key = version if status == 200 else f"HTTP {status}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def close(self) -> None:
        await self.session.close()


@pytest_asyncio.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[LocalMesh]:
    m = LocalMesh(tmp_path)
    await m.start_control_plane()
    try:
        yield m
    finally:
        await m.stop()


async def start_bookinfo_reviews(mesh: LocalMesh, with_rules: bool = True) -> MeshClient:
    """A client workload (productpage) plus reviews v1/v2/v3 and ratings, all synced."""
    specs = [bookinfo_spec("productpage")]
    specs += [bookinfo_spec("reviews", v) for v in ("v1", "v2", "v3")]
    specs.append(bookinfo_spec("ratings"))
    if with_rules:
        await mesh.apply(NETWORKING / "destination-rule-all.yaml")
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=len(specs))
    return MeshClient(mesh, "productpage-v1")


@pytest_asyncio.fixture
async def bookinfo(mesh: LocalMesh) -> AsyncIterator[MeshClient]:
    client = await start_bookinfo_reviews(mesh)
    try:
        yield client
    finally:
        await client.close()


async def apply_and_sync(mesh: LocalMesh, path: Path, delete: bool = False) -> None:
    before = await mesh.snapshot_version()
    await mesh.apply(path, delete=delete)
    await mesh.wait_synced(min_snapshot=before + 1, proxies=len(mesh.workloads))
