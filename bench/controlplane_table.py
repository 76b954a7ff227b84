"""The control-plane benchmark's matrix as results: which cells are worth running, the README
table's rows, and the verdicts on the targets."""

from __future__ import annotations

from typing import Any

# Targets at N=1000, M=1000, scoped.
TARGET_CELL = ("scoped", 1000, 1000)
TARGET_RDS_P99_MS, TARGET_EDS_P99_MS, TARGET_RSS_MIB = 1000.0, 500.0, 1024.0


def predicted_connect_s(done: list[dict[str, Any]], profile: str, n: int, m: int) -> float:
    """Connect time of a cell, scaled linearly from the nearest smaller one of its profile: the
    same N with the most proxies, else the same M with the most services. A smaller cell that
    timed out while connecting predicts at least its timeout."""
    mine = [c for c in done if c["profile"] == profile and (c["services"], c["proxies"]) != (n, m)]
    same_n = [c for c in mine if c["services"] == n and c["proxies"] < m]
    same_m = [c for c in mine if c["proxies"] == m and c["services"] < n]
    for group, key in ((same_n, "proxies"), (same_m, "services")):
        if not group:
            continue
        cell = max(group, key=lambda c: c[key])
        measured = cell.get("connect_s")
        if measured is None and cell["status"] == "timeout" and cell.get("phase") == "connect":
            measured = cell["cell_timeout_s"]
        if measured is not None:
            scale: float = (m / cell["proxies"]) * (n / cell["services"])
            return float(measured) * scale
    return 0.0


def render_cell(cell: dict[str, Any]) -> list[str]:
    head = [cell["profile"], str(cell["services"]), str(cell["proxies"])]
    if cell["status"] == "not run":
        return [*head, f"not run (connect predicted ~{cell['predicted_connect_s']:.0f} s)"] + [
            ""
        ] * 5

    def pct(key: str) -> str:
        found = cell.get(key) or {}
        p = found.get("acked_ms")
        return f"{p['p50']:.0f} / {p['p99']:.0f} / {p['max']:.0f}" if p else "timeout"

    def cpu() -> str:
        parts = [
            str(cell[k]["cp_cpu_s_per_push"]) if k in cell else "-" for k in ("vs", "endpoint")
        ]
        return " / ".join(parts)

    connect = (
        f"{cell['connect_s']}"
        if "connect_s" in cell
        else (f"timeout ({cell.get('synced', 0)}/{cell['proxies']} synced)")
    )
    rss = (
        f"{cell['rss_before_mib']:.0f} → {cell['rss_after_mib']:.0f}"
        if "rss_after_mib" in cell
        else "-"
    )
    per = f"{cell['rss_per_proxy_kib']:.0f}" if "rss_per_proxy_kib" in cell else "-"
    return [*head, connect, pct("vs"), pct("endpoint"), cpu(), rss, per]


COLUMNS = [
    "profile",
    "N",
    "M",
    "connect, all M synced, s",
    "VS change → RDS ACK, ms p50 / p99 / max",
    "endpoint change → EDS ACK, ms p50 / p99 / max",
    "CP CPU s per push (VS / endpoint)",
    "CP RSS MiB (before → after connect)",
    "RSS per proxy, KiB",
]


def targets(cells: list[dict[str, Any]]) -> dict[str, Any]:
    profile, n, m = TARGET_CELL
    cell = next(
        (c for c in cells if (c["profile"], c["services"], c["proxies"]) == TARGET_CELL), None
    )
    if cell is None:
        return {"cell": f"{profile} N={n} M={m}", "measured": False}

    def p99(key: str) -> float | None:
        found = cell.get(key) or {}
        return found["acked_ms"]["p99"] if found.get("acked_ms") else None

    rds, eds = p99("vs"), p99("endpoint")
    rss = cell.get("rss_peak_mib") or cell.get("rss_after_mib")

    def verdict(value: float | None, limit: float) -> str:
        return "PASS" if value is not None and value <= limit and cell["status"] == "ok" else "MISS"

    return {
        "cell": f"{profile} N={n} M={m}",
        "measured": True,
        "vs_rds_p99_ms": {"value": rds, "target": TARGET_RDS_P99_MS,
                          "verdict": verdict(rds, TARGET_RDS_P99_MS)},
        "endpoint_eds_p99_ms": {"value": eds, "target": TARGET_EDS_P99_MS,
                                "verdict": verdict(eds, TARGET_EDS_P99_MS)},
        "cp_rss_mib": {"value": rss, "target": TARGET_RSS_MIB,
                       "verdict": verdict(rss, TARGET_RSS_MIB)},
    }  # fmt: skip
