"""Make before break: subsets renamed under load, every 0.5 s, and not one request fails.
Clusters are added before the routes that use them, and removed only once the routes that
named them are gone from Envoy. Real Envoy, over both ADS protocols."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.inprocess_mesh import (
    REVIEWS,
    Backends,
    Client,
    ControlPlane,
    rules,
    start_envoy,
    until,
)
from weft.api import IstioObject

pytestmark = pytest.mark.integration

RENAMES = 12
INTERVAL_S = 0.5
WORKERS = 4  # concurrent clients, each one request at a time
MAX_REQUESTS = 20_000


def renamed(generation: int) -> list[IstioObject]:
    """Reviews' subsets under new names, and a route that splits between them."""
    first, second = f"first-{generation}", f"second-{generation}"
    return rules(
        f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: {first}, labels: {{version: v1}}}}
  - {{name: {second}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {{destination: {{host: reviews, subset: {first}}}, weight: 50}}
    - {{destination: {{host: reviews, subset: {second}}}, weight: 50}}
"""
    )


async def load(client: Client, stop: asyncio.Event, results: list[tuple[int, str]]) -> None:
    deadline = time.monotonic() + RENAMES * INTERVAL_S + 10
    while not stop.is_set() and len(results) < MAX_REQUESTS and time.monotonic() < deadline:
        results.append(await client.get())


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
async def test_renaming_subsets_under_load_fails_no_request(
    tmp_path: Path, delta: bool, caplog: pytest.LogCaptureFixture
) -> None:
    backends = Backends()
    await backends.start(["v1", "v2"])
    cp = ControlPlane(backends.registry)
    await cp.start(renamed(0))
    envoy, proxy_port = await start_envoy(tmp_path, cp.port, delta)
    client = Client(proxy_port)
    try:
        await client.serving({"v1", "v2"})
        results: list[tuple[int, str]] = []
        stop = asyncio.Event()
        workers = [asyncio.create_task(load(client, stop, results)) for _ in range(WORKERS)]
        try:
            for generation in range(1, RENAMES + 1):
                await asyncio.sleep(INTERVAL_S)
                cp.push(renamed(generation))
            await asyncio.sleep(INTERVAL_S)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        outcomes = Counter(results)
        assert len(results) > 100 * RENAMES, outcomes  # the load ran all along
        assert {version for status, version in outcomes if status == 200} == {"v1", "v2"}
        assert [o for o in outcomes.items() if o[0][0] != 200] == []
        await until(cp.synced, "every type SYNCED")
        # Each step waited for Envoy's answers, never for the bound on waiting.
        assert "sending its listeners and routes anyway" not in caplog.text
        # What no route names any more is gone from Envoy.
        dump = await envoy.config_dump()
        clusters = {
            c["cluster"]["name"]
            for config in dump["configs"]
            for c in config.get("dynamic_active_clusters", [])
            if REVIEWS in c["cluster"]["name"]
        }
        assert clusters == {
            f"outbound|9080|{subset}|{REVIEWS}"
            for subset in ("", f"first-{RENAMES}", f"second-{RENAMES}")
        }
    finally:
        await client.close()
        await envoy.stop()
        await cp.stop()
        await backends.stop()
