"""bench/results/controlplane.png from controlplane.json: push-to-ACK p99 and control-plane
RSS as N (services) and M (proxies) grow, one line per profile and size.

    python -m bench.plot [--results bench/results/controlplane.json] [--out ...png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench import report

RESULTS = report.RESULTS_DIR / "controlplane.json"
OUT = report.RESULTS_DIR / "controlplane.png"
STYLES = {"full": "-", "scoped": "--", "alike": ":"}
MARKERS = {"full": "o", "scoped": "s", "alike": "^"}
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def p99_s(cell: dict[str, Any], kind: str) -> float | None:
    found = cell.get(kind) or {}
    acked = found.get("acked_ms")
    return acked["p99"] / 1000 if acked else None


def rss_mib(cell: dict[str, Any]) -> float | None:
    value = cell.get("rss_peak_mib") or cell.get("rss_after_mib")
    return float(value) if value else None


def _lines(
    ax: Axes,
    cells: list[dict[str, Any]],
    value: Any,
    x_key: str,
    line_key: str,
    ceiling: float | None,
) -> None:
    """One line per (profile, line_key value); cells without a value are drawn as an open
    marker at `ceiling` (a timeout), or left out."""
    profiles = sorted({c["profile"] for c in cells}, key=lambda p: list(STYLES).index(p))
    groups = sorted({c[line_key] for c in cells})
    for profile in profiles:
        for n, group in enumerate(groups):
            mine = sorted(
                (c for c in cells if c["profile"] == profile and c[line_key] == group),
                key=lambda c: c[x_key],
            )
            points = [(c[x_key], value(c)) for c in mine if value(c) is not None]
            color = COLORS[n % len(COLORS)]
            label = f"{profile}, {'N' if line_key == 'services' else 'M'}={group}"
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, STYLES.get(profile, "-"), marker=MARKERS.get(profile, "o"),
                        color=color, label=label)  # fmt: skip
            missed = [c[x_key] for c in mine if value(c) is None and c["status"] == "timeout"]
            if missed and ceiling is not None:
                ax.plot(missed, [ceiling] * len(missed), linestyle="none",
                        marker=MARKERS.get(profile, "o"), markerfacecolor="none",
                        color=color)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)


def draw(res: dict[str, Any], out: Path) -> Path:
    cells = res["figures"]["cells"]
    timeout = float(res["figures"]["cell_timeout_s"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))

    def p99(cell: dict[str, Any]) -> float | None:
        return p99_s(cell, "vs")

    push = "VirtualService change → every RDS ACK, p99 (s)"
    rss = "control plane RSS, MiB (peak; after connect if timed out)"
    panels = [
        (axes[0][0], p99, "proxies", "services", timeout, push),
        (axes[0][1], p99, "services", "proxies", timeout, push),
        (axes[1][0], rss_mib, "proxies", "services", None, rss),
        (axes[1][1], rss_mib, "services", "proxies", None, rss),
    ]
    for ax, value, x_key, line_key, ceiling, ylabel in panels:
        _lines(ax, cells, value, x_key, line_key, ceiling)
        ax.set_xlabel("M, proxies" if x_key == "proxies" else "N, services")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].axhline(1.0, color="grey", linewidth=0.8)
    axes[0][1].axhline(1.0, color="grey", linewidth=0.8)
    axes[1][0].axhline(1024, color="grey", linewidth=0.8)
    axes[1][1].axhline(1024, color="grey", linewidth=0.8)
    fig.suptitle(
        f"{res['command']} — {res['date']}\n"
        "open markers: timed out (drawn at the cell timeout); grey: targets (1 s, 1 GiB)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plot", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    res = json.loads(args.results.read_text())
    print(f"wrote {draw(res, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
