"""Figures of the data-plane benchmark: per path and load, the targets, and the README table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.wrk import Load

# Istio 1.24 publishes 0.20 vCPU and 60 MB per sidecar per 1000 rps; ours is stricter on CPU.
CPU_TARGET_VCPU = 0.10
RSS_TARGET_MB = 60.0
FLOOR_MARGIN = 0.10  # Weft's pair may cost at most 10% more than the minimal pair
MIB = 1024 * 1024

# Which watched process is which sidecar, per path.
ENVOYS: dict[str, dict[str, str]] = {
    "direct": {},
    "sidecar": {"server": "weft-server"},
    "mesh": {"client": "weft-client", "server": "weft-server"},
    "floor": {"client": "floor-client", "server": "floor-server"},
}
COLUMNS = {
    "direct": "direct",
    "sidecar": "1 Weft sidecar",
    "mesh": "Weft mesh: 2 sidecars, mTLS",
    "floor": "floor: 2 minimal Envoys, mTLS",
}
SHORT_LOAD = {0: "paced ~1000 rps", 1: "2 conns", 2: "32 conns"}


def per_1000_rps(cpu_s: float | None, requests: int) -> float | None:
    """vCPU per 1000 rps: CPU seconds per request, times 1000."""
    if cpu_s is None or not requests:
        return None
    return round(cpu_s / requests * 1000, 4)


def _path_figures(run: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    lat, base = run["latency_ms"], direct["latency_ms"]
    envoys = {
        role: {
            "vcpu_per_1000_rps": per_1000_rps(run["cpu_s"][proc], run["requests"]),
            "rss_mib": run["rss_mib"][proc],
            "private_mib": (run["memory_mib"][proc] or {}).get("anon"),
        }
        for role, proc in ENVOYS[run["path"]].items()
    }
    cpus = [e["vcpu_per_1000_rps"] for e in envoys.values()]
    total = sum(run["cpu_s"][proc] or 0.0 for proc in ENVOYS[run["path"]].values())
    system = sum(run["cpu_system_s"][proc] or 0.0 for proc in ENVOYS[run["path"]].values())
    return {
        "rps": run["rps"],
        "errors": run["error_count"],
        "latency_ms": lat,
        "added_ms": {p: round(lat[p] - base[p], 3) for p in ("p50", "p90", "p99")},
        "envoys": envoys,
        "envoy_vcpu_per_1000_rps": (
            round(sum(c for c in cpus if c is not None), 4) if envoys else None
        ),
        "envoy_system_pct": round(system / total * 100) if total else None,
        "machine": run["machine"],
        "repeated_runs": sum(run.get("attempts", [1])) - len(run.get("attempts", [1])),
        "nginx_vcpu_per_1000_rps": per_1000_rps(run["cpu_s"]["nginx"], run["requests"]),
    }


def mesh_processes_vcpu(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """CPU of the `weft run` agents and the control plane over all the runs (they only idle)."""
    wall = sum(r["wall_s"] for r in runs)
    names = ("weft-run-client", "weft-run-server", "control-plane")
    return {n: round(sum(r["cpu_s"].get(n) or 0.0 for r in runs) / wall, 4) for n in names}


def idle_vcpu(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """What each Envoy burns with no traffic: its CPU while the direct runs bypass it."""
    direct = [r for r in runs if r["path"] == "direct"]
    wall = sum(r["wall_s"] for r in direct)
    procs = {proc for envoys in ENVOYS.values() for proc in envoys.values()}
    return {
        proc: round(sum(r["cpu_s"][proc] or 0.0 for r in direct) / wall, 4)
        for proc in sorted(procs)
        if wall
    }


def _pct_over(value: float, floor: float) -> float | None:
    return None if floor <= 0 else round((value / floor - 1) * 100, 1)


def _versus_floor(mesh: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """How much more Weft's pair costs than the minimal pair, in percent."""
    return {
        "cpu_pct": _pct_over(mesh["envoy_vcpu_per_1000_rps"], floor["envoy_vcpu_per_1000_rps"]),
        "added_p50_pct": _pct_over(mesh["added_ms"]["p50"], floor["added_ms"]["p50"]),
        "added_p99_pct": _pct_over(mesh["added_ms"]["p99"], floor["added_ms"]["p99"]),
    }


def figures(
    runs: Sequence[dict[str, Any]], loads: Sequence[Load], paths: Sequence[str]
) -> dict[str, Any]:
    by_load = []
    for load in loads:
        found = {r["path"]: r for r in runs if r["load"] == load.name}
        per_path = {p: _path_figures(found[p], found["direct"]) for p in paths}
        by_load.append(
            {
                "load": load.name,
                "connections": load.connections,
                "rate": load.rate,
                "paths": per_path,
                "weft_vs_floor": _versus_floor(per_path["mesh"], per_path["floor"]),
            }
        )
    return {
        "by_load": by_load,
        "targets": targets(by_load[0]),
        "envoy_idle_vcpu": idle_vcpu(runs),
        "mesh_processes_vcpu": mesh_processes_vcpu(runs),
    }


def targets(paced: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, judged at the paced ~1000 rps load, as Istio measures.

    Per-sidecar targets judge Weft's Envoys only; the floor's figures are there to compare.
    """
    paths = paced["paths"]
    weft = [
        (f"{path} {role}", e)
        for path in ("sidecar", "mesh")
        for role, e in paths[path]["envoys"].items()
    ]
    floor_envoys = [(f"floor {role}", e) for role, e in paths["floor"]["envoys"].items()]
    worst_cpu = max(e["vcpu_per_1000_rps"] for _, e in weft)
    worst_rss_mb = max(e["rss_mib"] for _, e in weft) * MIB / 1e6
    versus = paced["weft_vs_floor"]
    limit_pct = FLOOR_MARGIN * 100

    def within(pct: float | None) -> bool:
        return pct is not None and pct <= limit_pct

    mesh, floor = paths["mesh"], paths["floor"]
    return [
        {
            "target": f"CPU per sidecar <= {CPU_TARGET_VCPU} vCPU per 1000 rps",
            "measured": {name: e["vcpu_per_1000_rps"] for name, e in weft + floor_envoys},
            "pass": worst_cpu <= CPU_TARGET_VCPU,
        },
        {
            "target": f"RSS per sidecar <= {RSS_TARGET_MB:g} MB at ~1000 rps",
            "measured": {
                name: round(e["rss_mib"] * MIB / 1e6, 1) for name, e in weft + floor_envoys
            },
            "pass": worst_rss_mb <= RSS_TARGET_MB,
        },
        {
            "target": "Weft pair CPU per request within 10% of the minimal pair",
            "measured": {
                "weft": mesh["envoy_vcpu_per_1000_rps"],
                "floor": floor["envoy_vcpu_per_1000_rps"],
                "pct": versus["cpu_pct"],
            },
            "pass": within(versus["cpu_pct"]),
        },
        {
            "target": "Weft pair added p50 within 10% of the minimal pair",
            "measured": {
                "weft_ms": mesh["added_ms"]["p50"],
                "floor_ms": floor["added_ms"]["p50"],
                "pct": versus["added_p50_pct"],
            },
            "pass": within(versus["added_p50_pct"]),
        },
        {
            "target": "Weft pair added p99 within 10% of the minimal pair",
            "measured": {
                "weft_ms": mesh["added_ms"]["p99"],
                "floor_ms": floor["added_ms"]["p99"],
                "pct": versus["added_p99_pct"],
            },
            "pass": within(versus["added_p99_pct"]),
        },
    ]


def _short(value: Any) -> str:
    """A figure for a table cell: floats to at most three decimals."""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def run_line(run: dict[str, Any]) -> str:
    lat = run["latency_ms"]
    cpu = {
        role: per_1000_rps(run["cpu_s"][proc], run["requests"])
        for role, proc in ENVOYS[run["path"]].items()
    }
    envoys = ", ".join(f"{role} {_num(v)}" for role, v in cpu.items()) or "none"
    return (
        f"{run['load']:32} {run['path']:8} {run['rps']:9.1f} rps  "
        f"p50 {lat['p50']:.3f} p90 {lat['p90']:.3f} p99 {lat['p99']:.3f} ms  "
        f"Envoy vCPU/1000 rps: {envoys}  errors {run['error_count']}  "
        f"others {run['machine']['other_vcpu']:.2f} vCPU  attempts {run.get('attempts')}"
    )


def target_lines(figs: dict[str, Any]) -> list[str]:
    lines = ["targets (paced ~1000 rps):"]
    for t in figs["targets"]:
        measured = ", ".join(f"{k} {v}" for k, v in t["measured"].items())
        lines.append(f"  {_verdict(t['pass'])}  {t['target']}: {measured}")
    return lines


def _envoy_cpu(p: dict[str, Any]) -> str:
    envoys = p["envoys"]
    if not envoys:
        return "-"
    parts = [_num(e["vcpu_per_1000_rps"]) for e in envoys.values()]
    system = f" ({p['envoy_system_pct']}% kernel)"
    if len(parts) == 1:
        return parts[0] + system
    return f"{' + '.join(parts)} = {_num(p['envoy_vcpu_per_1000_rps'])}{system}"


def table(figs: dict[str, Any]) -> dict[str, Any]:
    paths = list(COLUMNS)
    rows: list[list[str]] = []

    def row(label: str, cell: Any) -> None:
        rows.append([label, *(cell(path) for path in paths)])

    for index, entry in enumerate(figs["by_load"]):
        name = SHORT_LOAD.get(index, entry["load"])
        per = entry["paths"]

        def lat(path: str, per: dict[str, Any] = per) -> str:
            ms = per[path]["latency_ms"]
            return f"{ms['p50']:.2f} / {ms['p90']:.2f} / {ms['p99']:.2f}"

        def added(path: str, per: dict[str, Any] = per) -> str:
            if path == "direct":
                return "-"
            ms = per[path]["added_ms"]
            return f"{ms['p50']:.2f} / {ms['p99']:.2f}"

        def versus(path: str, entry: dict[str, Any] = entry) -> str:
            if path != "mesh":
                return ""
            v = entry["weft_vs_floor"]
            return " / ".join(_pct(v[k]) for k in ("cpu_pct", "added_p50_pct", "added_p99_pct"))

        row(f"{name}: rps", lambda p, per=per: f"{per[p]['rps']:.0f}")
        row(f"{name}: latency p50 / p90 / p99, ms", lat)
        row(f"{name}: added over direct p50 / p99, ms", added)
        row(
            f"{name}: Envoy CPU, vCPU per 1000 rps (client + server)",
            lambda p, per=per: _envoy_cpu(per[p]),
        )
        row(
            f"{name}: nginx CPU, vCPU per 1000 rps",
            lambda p, per=per: _num(per[p]["nginx_vcpu_per_1000_rps"]),
        )
        row(f"{name}: Weft pair vs floor: CPU / added p50 / added p99", versus)

    paced = figs["by_load"][0]["paths"]

    def memory(path: str) -> str:
        envoys = paced[path]["envoys"].values()
        return " / ".join(f"{e['rss_mib']:.0f} ({e['private_mib']:.0f})" for e in envoys) or "-"

    def idle(path: str) -> str:
        procs = ENVOYS[path].values()
        return " / ".join(_num(figs["envoy_idle_vcpu"].get(proc)) for proc in procs) or "-"

    def machine(key: str) -> Any:
        def cell(path: str) -> str:
            return " / ".join(f"{e['paths'][path]['machine'][key]:.2f}" for e in figs["by_load"])

        return cell

    row("Envoy VmRSS (private RssAnon) at ~1000 rps, MiB, client / server", memory)
    row("Envoy idle CPU, vCPU, client / server (during the direct runs)", idle)
    row("wrk's own CPU, vCPU, per load", machine("wrk_vcpu"))
    row(
        "CPU of everything else on the machine during the runs, vCPU, per load",
        machine("other_vcpu"),
    )
    row("CPU stolen by the hypervisor during the runs, vCPU, per load", machine("stolen_vcpu"))
    row(
        "runs repeated because other work disturbed them, per load",
        lambda p: " / ".join(str(e["paths"][p]["repeated_runs"]) for e in figs["by_load"]),
    )
    for t in figs["targets"]:
        measured = t["measured"]
        cells = {p: "" for p in paths}
        if "pct" in measured:
            keys = [k for k in measured if k != "pct"]
            cells["mesh"] = (
                f"{_short(measured[keys[0]])} vs {_short(measured[keys[1]])} "
                f"({_pct(measured['pct'])}): **{_verdict(t['pass'])}**"
            )
        else:
            for path in ("sidecar", "mesh", "floor"):
                values = [_short(v) for k, v in measured.items() if k.startswith(path)]
                cells[path] = " / ".join(values)
            cells["mesh"] += f": **{_verdict(t['pass'])}**"
            cells["floor"] += " (reference)"
        rows.append([f"target: {t['target']}", *(cells[p] for p in paths)])
    return {"columns": ["figure", *(COLUMNS[p] for p in paths)], "rows": rows}


def _hcm_summary(config: dict[str, Any]) -> dict[str, Any]:
    routine = {"@type", "stat_prefix", "route_config", "rds", "http_filters", "codec_type"}
    return {
        "http_filters": [f["name"] for f in config.get("http_filters", [])],
        "options": sorted(k for k in config if k not in routine),
    }


def _listener_summary(listener: dict[str, Any]) -> dict[str, Any]:
    chains = []
    for chain in listener.get("filter_chains", []):
        filters = []
        for f in chain.get("filters", []):
            entry: dict[str, Any] = {"name": f["name"]}
            if f["name"].endswith("http_connection_manager"):
                entry.update(_hcm_summary(f.get("typed_config", {})))
            filters.append(entry)
        chains.append(
            {
                "name": chain.get("name", ""),
                "transport_socket": chain.get("transport_socket", {}).get("name", "raw"),
                "filters": filters,
            }
        )
    return {
        "name": listener.get("name", ""),
        "listener_filters": [f["name"] for f in listener.get("listener_filters", [])],
        "filter_chains": chains,
    }


def config_summary(dumps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per Weft sidecar: its listeners' filters and options, and what its backend route and
    cluster set, read from Envoy's /config_dump."""
    out: dict[str, Any] = {}
    for role, dump in dumps.items():
        summary: dict[str, Any] = {"listeners": [], "routes": {}, "clusters": {}}
        for section in dump.get("configs", []):
            kind = section.get("@type", "").rsplit(".", 1)[-1]
            if kind == "ListenersConfigDump":
                for dyn in section.get("dynamic_listeners", []):
                    listener = dyn.get("active_state", {}).get("listener", {})
                    summary["listeners"].append(_listener_summary(listener))
            elif kind == "RoutesConfigDump":
                for dyn in section.get("dynamic_route_configs", []):
                    for vhost in dyn.get("route_config", {}).get("virtual_hosts", []):
                        if vhost["name"].startswith("backend"):
                            summary["routes"][vhost["name"]] = [
                                sorted(r.get("route", {})) for r in vhost.get("routes", [])
                            ]
            elif kind == "ClustersConfigDump":
                for dyn in section.get("dynamic_active_clusters", []):
                    cluster = dyn.get("cluster", {})
                    if "backend" in cluster.get("name", ""):
                        summary["clusters"][cluster["name"]] = sorted(
                            k for k in cluster if k not in ("@type", "name")
                        )
        out[role] = summary
    return out
