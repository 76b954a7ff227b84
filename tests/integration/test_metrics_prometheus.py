"""A real Prometheus scrapes the control plane: the queries an Istio user runs against istiod
(its dashboards' `pilot_xds`, `pilot_xds_pushes{type="cds"}`, convergence quantiles) work."""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

import weft
from tests.integration.conftest import (
    NETWORKING,
    apply_and_sync,
    bad_regex_rule,
    bookinfo_spec,
)
from weft.agent.ports import free_port
from weft.cli.mesh import Child, LocalMesh
from weft.errors import WeftError

pytestmark = pytest.mark.integration

XDS_TYPES = ("cds", "eds", "lds", "rds")
# Prometheus needs ~5-6 s before its first sample is queryable (FACTS.md); then 1 s scrapes.
DEADLINE = 30.0


Series = list[tuple[dict[str, str], float]]


class Prometheus:
    """A `prometheus` process on 127.0.0.1 scraping one target every second."""

    def __init__(self, work_dir: Path, target: str) -> None:
        self.work_dir = work_dir
        self.target = target
        self.port = free_port()
        self.child: Child | None = None
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Child:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "the `prometheus` binary is not on PATH: `make test` installs it "
                "(or: apt-get install -y --no-install-recommends prometheus)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "- job_name: weft-control-plane\n"
            "  metrics_path: /metrics\n"
            f"  static_configs: [{{targets: ['{self.target}']}}]\n"
        )
        log = self.work_dir / "prometheus.log"
        with open(log, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--query.lookback-delta=30s",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.child = Child("prometheus", proc, log)
        return self.child

    async def stop(self) -> None:
        """By PID: SIGTERM, then SIGKILL if it has not exited within 10 s."""
        if self.child is not None:
            await self.child.stop()
        await self.session.close()

    async def ready(self) -> bool:
        try:
            async with self.session.get(f"{self.url}/-/ready") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def api(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
            assert body["status"] == "success", body
            return body["data"]

    async def query(self, expr: str) -> Series:
        """An instant query's vector: (labels, value) per series."""
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    async def scrape_state(self) -> str:
        """The target's health and last error, for a failure message."""
        try:
            targets = (await self.api("targets"))["activeTargets"]
        except (aiohttp.ClientError, TimeoutError, AssertionError) as e:
            return f"targets unavailable: {e}"
        return "; ".join(f"{t['scrapeUrl']} {t['health']} {t['lastError']!r}" for t in targets)


async def eventually(
    mesh: LocalMesh,
    prometheus: Prometheus,
    expr: str,
    wanted: Callable[[Series], bool],
    what: str,
) -> Series:
    """Poll `expr` until `wanted(result)`; at the deadline fail with the last result and why."""
    last: Series = []

    async def check() -> bool:
        nonlocal last
        try:
            last = await prometheus.query(expr)
        except (aiohttp.ClientError, TimeoutError):
            return False
        return wanted(last)

    watched = [c for c in (prometheus.child, mesh.control_plane) if c is not None]
    try:
        await mesh.until(check, DEADLINE, what, *watched)
    except WeftError as e:
        raise AssertionError(
            f"{e}\nquery: {expr}\nlast result: {last}\nscrape: {await prometheus.scrape_state()}"
        ) from None
    return last


def by_type(series: Series) -> dict[str, float]:
    return {labels.get("type", ""): value for labels, value in series}


@pytest_asyncio.fixture
async def prometheus(mesh: LocalMesh, tmp_path: Path) -> AsyncIterator[Prometheus]:
    prom = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{mesh.admin_port}")
    try:
        child = await prom.start()
        await mesh.until(prom.ready, DEADLINE, "Prometheus to be ready", child)
        yield prom
    finally:
        await prom.stop()


async def test_istio_queries_against_a_real_prometheus(
    mesh: LocalMesh, prometheus: Prometheus, tmp_path: Path
) -> None:
    specs = [bookinfo_spec("productpage"), bookinfo_spec("reviews", "v1")]
    await mesh.apply(NETWORKING / "destination-rule-all.yaml")
    for spec in specs:
        await mesh.start_workload(spec)
    await mesh.wait_registered([s.key for s in specs])
    await mesh.wait_synced(proxies=len(specs))

    # Connected proxies, as istiod's dashboards read them.
    await eventually(
        mesh,
        prometheus,
        "sum(pilot_xds)",
        lambda r: [v for _, v in r] == [2.0],
        "pilot_xds to count both proxies",
    )
    # By the version of their agents, as istiod labels it.
    by_version = await prometheus.query("sum by (version) (pilot_xds)")
    assert [(r["version"], v) for r, v in by_version] == [(weft.__version__, 2.0)], by_version

    # Pushes by type, with istiod's name and label values: no `_total`, `type="cds"`.
    pushes = by_type(
        await eventually(
            mesh,
            prometheus,
            "pilot_xds_pushes",
            lambda r: all(by_type(r).get(t, 0) > 0 for t in XDS_TYPES),
            "pilot_xds_pushes to have cds, eds, lds and rds series",
        )
    )
    assert set(pushes) <= {*XDS_TYPES, "sds"}, pushes
    assert await prometheus.query('{__name__=~"pilot_.+_total"}') == []
    metadata = await prometheus.api("metadata", metric="pilot_xds_pushes")
    assert [m["type"] for m in metadata["pilot_xds_pushes"]] == ["counter"], metadata
    assert await prometheus.query("pilot_total_xds_rejects") == []  # nothing refused yet

    # A route change reaches both proxies: RDS pushes go up, and so does the push rate.
    await apply_and_sync(mesh, NETWORKING / "virtual-service-all-v1.yaml")
    await eventually(
        mesh,
        prometheus,
        'pilot_xds_pushes{type="rds"}',
        lambda r: by_type(r).get("rds", 0) >= pushes["rds"] + len(specs),
        "pilot_xds_pushes{type=rds} to count the route change for both proxies",
    )
    rate = await eventually(
        mesh,
        prometheus,
        "sum(rate(pilot_xds_pushes[1m]))",
        lambda r: len(r) == 1 and r[0][1] > 0,
        "the push rate to be positive",
    )
    assert math.isfinite(rate[0][1])

    # Convergence quantiles, as in Istio's "Proxy Push Time" panel.
    quantile = await eventually(
        mesh,
        prometheus,
        "histogram_quantile(0.99, sum(rate(pilot_proxy_convergence_time_bucket[1m])) by (le))",
        lambda r: len(r) == 1 and math.isfinite(r[0][1]),
        "a p99 proxy convergence time",
    )
    assert 0 < quantile[0][1] <= 30, quantile
    # `le` reads as istiod writes it, so a query for one of its buckets finds it.
    assert len(await prometheus.query('pilot_proxy_convergence_time_bucket{le="1"}')) == 1
    push_time = await prometheus.query('pilot_xds_push_time_bucket{le="0.1"}')
    assert {r[0]["type"] for r in push_time} >= {"cds", "eds", "lds", "rds"}, push_time

    # A rule Envoy refuses (RE2 allows no repetition above 1000) is counted as a reject.
    await mesh.apply(bad_regex_rule(tmp_path))
    await eventually(
        mesh,
        prometheus,
        "sum by (type) (pilot_total_xds_rejects)",
        lambda r: by_type(r).get("rds", 0) >= 1,
        "pilot_total_xds_rejects{type=rds} to count the refused route",
    )

    # A proxy leaving is counted out.
    await mesh.stop_workload("reviews-v1")
    await eventually(
        mesh,
        prometheus,
        "sum(pilot_xds)",
        lambda r: [v for _, v in r] == [1.0],
        "pilot_xds to drop to one proxy",
    )
