"""Generation cost on the control plane's hot path: snapshot build and generate_all.

A synthetic mesh of N services (2-3 endpoints each, port 8080; a DestinationRule with two
subsets and an 80/20 VirtualService for one service in five) is built into a Snapshot, and
config for one sidecar is generated from it. Times are medians of several runs in this
process; the GenerationCache figure compares M alike proxies with one build, side by side.

    python -m bench.generation [--sizes 100,1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import report, synthetic
from bench.timing import median_ms
from weft.snapshot.build import build_snapshot
from weft.snapshot.policies import SecurityPolicies
from weft.snapshot.snapshot import Snapshot
from weft.xds import types
from weft.xds.cache import GenerationCache
from weft.xds.cds import generate_clusters
from weft.xds.eds import generate_endpoints
from weft.xds.generate import Resources, generate_all
from weft.xds.lds import generate_listeners
from weft.xds.rds import generate_routes

NAME = "generation"
COMMAND = "python -m bench.generation"
SIZES = (100, 1000)
ALIKE_PROXIES = 100
# Runs per timing: enough for a stable median on a noisy machine, bounded for big meshes
# (generate_all is seconds long at 1000 services). Per-stage timings take fewer.
RUNS = {100: 15, 1000: 5}
STAGE_RUNS = {100: 9, 1000: 3}


def _runs(services: int) -> int:
    return RUNS.get(services, 15 if services <= 300 else 5)


def _stage_runs(services: int) -> int:
    return STAGE_RUNS.get(services, 9 if services <= 300 else 3)


def mesh(services: int) -> tuple[Snapshot, Callable[[], Snapshot]]:
    """The synthetic mesh's snapshot, and a function building it again.

    A build reads the registry's views too, as the control plane's rebuild does.
    """
    reg = synthetic.registry(services)
    objects = synthetic.routing_objects(services)

    def build() -> Snapshot:
        return build_snapshot(1, objects, reg.services(), reg.endpoints())

    return build(), build


def stage_times(snap: Snapshot, runs: int) -> dict[str, float]:
    """Median ms of each generator alone, and of packing and hashing their output."""
    proxy = synthetic.sidecar(synthetic.service_name(1))
    clusters = generate_clusters(proxy, snap)
    eds_names = [c.eds_cluster_config.service_name for c in clusters if c.type == c.EDS]
    policies = SecurityPolicies.of(snap)
    listeners = generate_listeners(proxy.shape, policies)
    built = {
        types.CLUSTER: list(clusters),
        types.ENDPOINT: list(generate_endpoints(eds_names, snap, proxy.namespace)),
        types.LISTENER: list(listeners),
        types.ROUTE: list(generate_routes(proxy, snap)),
    }

    def pack() -> None:
        for type_url, msgs in built.items():
            Resources.of(type_url, [(_name(m), m) for m in msgs])

    return {
        "cds": round(median_ms(lambda: generate_clusters(proxy, snap), runs)[0], 2),
        "eds": round(
            median_ms(lambda: generate_endpoints(eds_names, snap, proxy.namespace), runs)[0], 2
        ),
        "lds": round(
            median_ms(lambda: generate_listeners(proxy.shape, SecurityPolicies.of(snap)), runs)[0],
            2,
        ),
        "rds": round(median_ms(lambda: generate_routes(proxy, snap), runs)[0], 2),
        "pack_and_hash": round(median_ms(pack, runs)[0], 2),
    }


def _name(msg: Any) -> str:
    return str(getattr(msg, "name", "") or msg.cluster_name)


def cache_hits(snap: Snapshot, alike: int) -> dict[str, float]:
    """M alike proxies through one GenerationCache: total time of M gets vs one build."""
    service = synthetic.service_name(1)
    proxies = [synthetic.sidecar(service, replica) for replica in range(alike)]
    cache = GenerationCache()
    samples = []
    for proxy in proxies:
        started = time.perf_counter()
        cache.get(proxy, snap)
        samples.append((time.perf_counter() - started) * 1000)
    assert cache.misses == 1 and cache.hits == alike - 1, (cache.misses, cache.hits)
    return {
        "proxies": alike,
        "total_ms": round(sum(samples), 2),
        "first_get_ms": round(samples[0], 2),
        "hit_us": round(statistics.median(samples[1:]) * 1000, 1),
    }


def measure(services: int) -> dict[str, Any]:
    runs = _runs(services)
    snap, build = mesh(services)
    gc.collect()
    build_ms, _ = median_ms(build, runs)
    proxy = synthetic.sidecar(synthetic.service_name(1))
    generate_ms, _ = median_ms(lambda: generate_all(proxy, snap), runs)
    config = generate_all(proxy, snap)
    resources = {types.short_name(t): len(r.items) for t, r in config.items()}
    size = {
        types.short_name(t): sum(a.ByteSize() for a in r.items.values()) for t, r in config.items()
    }
    cache = cache_hits(snap, ALIKE_PROXIES)
    return {
        "services": services,
        "endpoints": sum(len(e) for e in snap.endpoints.values()),
        "routed_services": len(snap.virtual_services),
        "runs": runs,
        "build_ms": round(build_ms, 2),
        "generate_ms": round(generate_ms, 2),
        "generate_ms_per_1000_services": round(generate_ms * 1000 / services, 1),
        "build_ms_per_1000_services": round(build_ms * 1000 / services, 1),
        "stages_ms": stage_times(snap, _stage_runs(services)),
        "resources": resources,
        "bytes": size,
        "total_bytes": sum(size.values()),
        "cache": {**cache, "one_build_ms": round(generate_ms, 2)},
        "cache_total_vs_one_build": round(cache["total_ms"] / generate_ms, 2),
        "cache_speedup_vs_no_cache": round(ALIKE_PROXIES * generate_ms / cache["total_ms"], 1),
    }


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    by_size = []
    for services in sizes:
        one = measure(services)
        print(_line(one), flush=True)
        by_size.append(one)
    figures: dict[str, Any] = {"sizes": by_size}
    if len(by_size) >= 2:
        small, big = by_size[0], by_size[-1]
        # 1.0 means generation grows linearly with the mesh; more means worse than linear.
        figures["per_service_cost_growth"] = round(
            big["generate_ms_per_1000_services"] / small["generate_ms_per_1000_services"], 2
        )
    return report.result(NAME, COMMAND, figures, _table(by_size, figures))


def _line(f: dict[str, Any]) -> str:
    return (
        f"N={f['services']}: build {f['build_ms']} ms, generate_all {f['generate_ms']} ms "
        f"({f['generate_ms_per_1000_services']} ms per 1000 services), "
        f"stages {f['stages_ms']}, resources {f['resources']}, {f['total_bytes']} bytes; "
        f"{f['cache']['proxies']} alike proxies via cache {f['cache']['total_ms']} ms "
        f"({f['cache_total_vs_one_build']}x one build, hit {f['cache']['hit_us']} us)"
    )


def _table(by_size: list[dict[str, Any]], figures: dict[str, Any]) -> dict[str, Any]:
    columns = ["figure", *(f"N={f['services']}" for f in by_size)]

    def row(label: str, value: Any) -> list[str]:
        return [label, *(str(value(f)) for f in by_size)]

    def resources(f: dict[str, Any]) -> str:
        return " / ".join(f"{f['resources'][t]}" for t in ("CDS", "EDS", "LDS", "RDS"))

    def kib(f: dict[str, Any]) -> str:
        return " / ".join(f"{f['bytes'][t] / 1024:.0f}" for t in ("CDS", "EDS", "LDS", "RDS"))

    rows = [
        row("endpoints / routed services", lambda f: f"{f['endpoints']} / {f['routed_services']}"),
        row("snapshot build incl. registry views, ms (median)", lambda f: f["build_ms"]),
        row("generate_all, one sidecar, ms (median)", lambda f: f["generate_ms"]),
        row("generate_all, ms per 1000 services", lambda f: f["generate_ms_per_1000_services"]),
        row(
            "stages cds / eds / lds / rds / pack+hash, ms",
            lambda f: " / ".join(
                str(f["stages_ms"][s]) for s in ("cds", "eds", "lds", "rds", "pack_and_hash")
            ),
        ),
        row("resources CDS / EDS / LDS / RDS", resources),
        row("serialized KiB CDS / EDS / LDS / RDS", kib),
        row(
            f"{ALIKE_PROXIES} alike proxies via GenerationCache, ms total",
            lambda f: f["cache"]["total_ms"],
        ),
        row("... vs one build (x)", lambda f: f["cache_total_vs_one_build"]),
        row("... cache hit, us (median)", lambda f: f["cache"]["hit_us"]),
    ]
    if "per_service_cost_growth" in figures:
        rows.append(
            [
                "per-service generate cost, largest vs smallest N (x; 1.0 = linear)",
                "",
                str(figures["per_service_cost_growth"]),
            ]
            + [""] * (len(by_size) - 2)
        )
    return {"columns": columns, "rows": rows}


def profile(services: int, top: int = 25) -> str:
    """cProfile of generate_all for one sidecar: the functions taking the most time."""
    snap, _ = mesh(services)
    proxy = synthetic.sidecar(synthetic.service_name(1))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        generate_all(proxy, snap)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="comma-separated mesh sizes (services)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print where generate_all spends its time (cProfile) instead of benchmarking",
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.profile:
        print(profile(max(sizes)))
        return 0
    result = run(sizes)
    path = report.write(result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
