"""Push to effect with real processes: a control plane, `weft run` workloads, real Envoys.

A LocalMesh runs Bookinfo's productpage, reviews v1 and v2 and ratings, each with its own
Envoy; its config directory also holds K synthetic objects (ServiceEntries, each with a
VirtualService) so the config every proxy gets is not trivial. Then, over a number of
repetitions, the reviews VirtualService is switched between v1 and v2 and we measure:

  (a) apply -> every proxy has ACKed the new routes (polling /debug/syncz every 5 ms);
  (b) apply -> a request sent through productpage's sidecar is answered by the new version.

    python -m bench.push [--extra 0,500] [--reps 10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import report, synthetic
from bench.processes import child_named, rss_mib
from bench.timing import summary
from weft.cli.mesh import LocalMesh, WorkloadSpec

NAME = "push"
COMMAND = "python -m bench.push"
EXTRA_OBJECTS = (0, 500)
REPS = 10
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bookinfo"
WORKLOADS = (("productpage", "v1"), ("reviews", "v1"), ("reviews", "v2"), ("ratings", "v1"))
CLIENT = "productpage-v1"
REVIEWS_URL = "http://reviews:9080/reviews/0"
POLL_S = 0.005
# Bounds on every wait and load loop.
START_TIMEOUT_S = 90.0
CHANGE_TIMEOUT_S = 20.0
MAX_REQUESTS_PER_CHANGE = 20_000
ROUND_TRIP_REQUESTS = 200
# Objects per file in the prefilled config directory (each ServiceEntry with its route).
PAIRS_PER_FILE = 10


def bookinfo_spec(service: str, version: str) -> WorkloadSpec:
    spec = WorkloadSpec(service, version)
    spec.command = [sys.executable, str(SAMPLES / "app.py"), service]
    spec.env = {"SERVICE_VERSION": version}
    return spec


def reviews_route(version: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {version}}}
"""


def prefill(config_dir: Path, extra: int) -> int:
    """Bookinfo's DestinationRules, reviews -> v1, and `extra` synthetic objects; returns count."""
    config_dir.mkdir(parents=True, exist_ok=True)
    rules = SAMPLES / "networking" / "destination-rule-all.yaml"
    shutil.copy(rules, config_dir / rules.name)
    (config_dir / "reviews-route.yaml").write_text(reviews_route("v1"))
    pairs = extra // 2
    for first in range(0, pairs, PAIRS_PER_FILE):
        text = synthetic.external_services_yaml(min(PAIRS_PER_FILE, pairs - first), first)
        (config_dir / f"external-{first:05d}.yaml").write_text(text)
    return 4 + 1 + 2 * pairs


class SidecarClient:
    """Requests the way an app sends them: to a service name, through its sidecar's proxy port."""

    def __init__(self, proxy_port: int) -> None:
        self.proxy = f"http://127.0.0.1:{proxy_port}"
        self.session = aiohttp.ClientSession(
            trust_env=False, timeout=aiohttp.ClientTimeout(total=5)
        )

    async def version(self, url: str) -> str:
        """The answering version, or 'HTTP <status>'."""
        async with self.session.get(url, proxy=self.proxy) as resp:
            await resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}"
            return resp.headers.get("x-service-version", "")

    async def close(self) -> None:
        await self.session.close()


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _routes_sent(syncz: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["types"]["RDS"]["sent"] for p in syncz["proxies"]}


def _all_synced(syncz: dict[str, Any]) -> bool:
    return all(
        t["status"] == "SYNCED"
        for p in syncz["proxies"]
        for name, t in p["types"].items()
        if name != "EDS" or t["sent"]
    )


async def change_until_acked(mesh: LocalMesh, rule: Path, proxies: int) -> dict[str, float]:
    """Apply `rule`; poll syncz until every proxy ACKed new routes. Times in ms from apply."""
    before = await mesh.syncz()
    old_routes = _routes_sent(before)
    started = time.perf_counter()
    await mesh.apply(rule)
    applied = _ms_since(started)
    pushed: float | None = None
    while _ms_since(started) < CHANGE_TIMEOUT_S * 1000:
        data = await mesh.syncz()
        elapsed = _ms_since(started)
        if not data["pending"] and data["snapshot"] > before["snapshot"]:
            routes = _routes_sent(data)
            if len(routes) >= proxies and all(routes[p] != old_routes.get(p) for p in routes):
                pushed = elapsed if pushed is None else pushed
                if _all_synced(data):
                    return {"apply": applied, "pushed": pushed, "acked": elapsed}
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"proxies did not ACK {rule.name} within {CHANGE_TIMEOUT_S:.0f}s")


async def change_until_seen(
    mesh: LocalMesh, client: SidecarClient, rule: Path, version: str
) -> dict[str, float]:
    """Apply `rule`; request through the sidecar until `version` answers. Times in ms."""
    started = time.perf_counter()
    await mesh.apply(rule)
    for sent in range(1, MAX_REQUESTS_PER_CHANGE + 1):
        if await client.version(REVIEWS_URL) == version:
            return {"seen": _ms_since(started), "requests": sent}
        if _ms_since(started) > CHANGE_TIMEOUT_S * 1000:
            break
    raise TimeoutError(f"{version} did not answer within {CHANGE_TIMEOUT_S:.0f}s of the change")


async def round_trips(client: SidecarClient, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await client.version(REVIEWS_URL)
        samples.append(_ms_since(started))
    return samples


def memory(mesh: LocalMesh) -> dict[str, Any]:
    """RSS of the control plane and of each workload's Envoy (a child of its `weft run`)."""
    assert mesh.control_plane is not None
    envoys: dict[str, float | None] = {}
    for key, child in sorted(mesh.workloads.items()):
        pid = child_named(child.proc.pid, "envoy")
        envoys[key] = None if pid is None else round(rss_mib(pid) or 0.0, 1)
    control_plane = rss_mib(mesh.control_plane.proc.pid)
    return {
        "control_plane_mib": None if control_plane is None else round(control_plane, 1),
        "envoy_mib": envoys,
    }


async def measure(extra: int, reps: int) -> dict[str, Any]:
    """One mesh with `extra` synthetic objects: start it, measure, always stop it."""
    work = Path(tempfile.mkdtemp(prefix="weft-bench-push-"))
    mesh = LocalMesh(work)
    client: SidecarClient | None = None
    ok = False
    try:
        objects = prefill(mesh.config_dir, extra)
        started = time.perf_counter()
        await mesh.start_control_plane(timeout=START_TIMEOUT_S)
        specs = [bookinfo_spec(service, version) for service, version in WORKLOADS]
        for spec in specs:
            await mesh.start_workload(spec)
        await mesh.wait_registered([s.key for s in specs], timeout=START_TIMEOUT_S)
        await mesh.wait_synced(proxies=len(specs), timeout=START_TIMEOUT_S)
        start_s = time.perf_counter() - started
        client = SidecarClient(mesh.specs[CLIENT].proxy_port)
        if (first := await client.version(REVIEWS_URL)) != "v1":
            raise RuntimeError(f"reviews should answer v1 before the changes, got {first!r}")
        idle = memory(mesh)
        trips = await round_trips(client, ROUND_TRIP_REQUESTS)

        rules = {v: work / f"reviews-{v}.yaml" for v in ("v1", "v2")}
        for version, path in rules.items():
            path.write_text(reviews_route(version))
        acks: list[dict[str, float]] = []
        seen: list[dict[str, float]] = []
        current = "v1"
        for _ in range(reps):
            current = "v2" if current == "v1" else "v1"
            acks.append(await change_until_acked(mesh, rules[current], len(specs)))
        for _ in range(reps):
            current = "v2" if current == "v1" else "v1"
            before = await mesh.snapshot_version()
            seen.append(await change_until_seen(mesh, client, rules[current], current))
            await mesh.wait_synced(before + 1, len(specs), timeout=CHANGE_TIMEOUT_S)
        after = memory(mesh)
        ok = True
        return {
            "extra_objects": extra,
            "config_objects": objects,
            "proxies": len(specs),
            "reps": reps,
            "start_to_synced_s": round(start_s, 2),
            "apply_ms": summary([a["apply"] for a in acks]),
            "pushed_ms": summary([a["pushed"] for a in acks]),
            "acked_ms": summary([a["acked"] for a in acks]),
            "seen_ms": summary([s["seen"] for s in seen]),
            "requests_until_seen": statistics.median(s["requests"] for s in seen),
            "request_round_trip_ms": summary(trips),
            "memory_idle": idle,
            "memory_after": after,
        }
    finally:
        if client is not None:
            await client.close()
        await mesh.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"push benchmark failed; logs kept in {mesh.log_dir}", file=sys.stderr)


def _line(f: dict[str, Any]) -> str:
    mem = f["memory_after"]
    envoys = [v for v in mem["envoy_mib"].values() if v is not None]
    return (
        f"K={f['extra_objects']}: start->synced {f['start_to_synced_s']} s; "
        f"apply->ACK p50 {f['acked_ms']['p50']} max {f['acked_ms']['max']} ms; "
        f"apply->seen p50 {f['seen_ms']['p50']} max {f['seen_ms']['max']} ms; "
        f"request {f['request_round_trip_ms']['p50']} ms; "
        f"control plane {mem['control_plane_mib']} MiB, Envoys {envoys} MiB"
    )


def _table(by_extra: list[dict[str, Any]]) -> dict[str, Any]:
    columns = ["figure", *(f"K={f['extra_objects']}" for f in by_extra)]

    def row(label: str, value: Any) -> list[str]:
        return [label, *(str(value(f)) for f in by_extra)]

    def p50_max(key: str) -> Any:
        return lambda f: f"{f[key]['p50']} / {f[key]['max']}"

    def envoys(f: dict[str, Any]) -> str:
        values = [v for v in f["memory_after"]["envoy_mib"].values() if v is not None]
        if not values:
            return "n/a"
        return f"{statistics.mean(values):.0f} ({min(values):.0f}-{max(values):.0f})"

    def cp(f: dict[str, Any]) -> str:
        return f"{f['memory_idle']['control_plane_mib']} / {f['memory_after']['control_plane_mib']}"

    return {
        "columns": columns,
        "rows": [
            row("config objects / proxies", lambda f: f"{f['config_objects']} / {f['proxies']}"),
            row("mesh start to every proxy synced, s", lambda f: f["start_to_synced_s"]),
            row("`apply` HTTP round trip, ms p50 / max", p50_max("apply_ms")),
            row("apply -> new snapshot pushed, ms p50 / max", p50_max("pushed_ms")),
            row("(a) apply -> every proxy ACKed, ms p50 / max", p50_max("acked_ms")),
            row("(b) apply -> request sees new route, ms p50 / max", p50_max("seen_ms")),
            row("request through sidecar, ms p50 / max", p50_max("request_round_trip_ms")),
            row("control plane RSS, MiB (idle / after)", cp),
            row("Envoy RSS, MiB mean (min-max)", envoys),
        ],
    }


async def run_async(extras: tuple[int, ...], reps: int) -> dict[str, Any]:
    by_extra = []
    for extra in extras:
        figures = await measure(extra, reps)
        print(_line(figures), flush=True)
        by_extra.append(figures)
    figures_all: dict[str, Any] = {"by_extra_objects": by_extra}
    if len(by_extra) >= 2:
        small, big = by_extra[0], by_extra[-1]
        figures_all["acked_p50_growth"] = round(
            big["acked_ms"]["p50"] / small["acked_ms"]["p50"], 2
        )
    return report.result(NAME, COMMAND, figures_all, _table(by_extra))


def run(extras: tuple[int, ...] = EXTRA_OBJECTS, reps: int = REPS) -> dict[str, Any]:
    return asyncio.run(run_async(extras, reps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--extra",
        default=",".join(map(str, EXTRA_OBJECTS)),
        help="comma-separated counts of synthetic config objects",
    )
    parser.add_argument("--reps", type=int, default=REPS, help="repetitions of each change")
    args = parser.parse_args(argv)
    result = run(tuple(int(k) for k in args.extra.split(",")), args.reps)
    path = report.write(result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
