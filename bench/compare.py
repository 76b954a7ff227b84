"""Old and new side by side: one benchmark run alternately from two commits, in one session.

The machine is shared and absolute figures drift, so a change is judged by running the same
benchmark against the commit before it and the working tree, interleaved (old, new, old,
new, ...), and comparing medians. The old commit is checked out once into a worktree under
the system's temporary directory; each side runs its own `bench` package with its own
`src` (first on PYTHONPATH), with this checkout's virtualenv.

    python -m bench.compare --old ca0e826 --rounds 2 generation --sizes 100,1000
    python -m bench.compare --old ca0e826 controlplane --services 1000 --proxies 1000 \\
        --profiles scoped

Prints every numeric figure both sides produced, with the median of each side and the
change, and writes them to `bench/results/compare/<benchmark>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def old_tree(rev: str) -> Path:
    """A worktree of `rev`, made once and reused."""
    sha = _git("rev-parse", "--short=12", rev)
    path = Path(tempfile.gettempdir()) / f"weft-bench-{sha}"
    if not (path / "src").is_dir():
        _git("worktree", "add", "--detach", "--force", str(path), sha)
    return path


def run_side(tree: Path, benchmark: str, args: list[str]) -> dict[str, Any]:
    """Run `python -m bench.<benchmark> ARGS` in `tree` with its own sources; its figures."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    subprocess.run(
        [sys.executable, "-m", f"bench.{benchmark}", *args], cwd=tree, env=env, check=True
    )
    found: dict[str, Any] = json.loads(
        (tree / "bench" / "results" / f"{benchmark}.json").read_text()
    )
    return found


def numbers(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every numeric leaf of a figures document, by its path."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            label = item.get("cell") or item.get("services") if isinstance(item, dict) else None
            yield from numbers(item, f"{prefix}[{label if label is not None else i}]")


def compare(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Median of each side per figure present on both sides, and the change in percent."""
    sides = {
        side: [dict(numbers(r.get("figures", r))) for r in results]
        for side, results in runs.items()
    }
    names = [n for n in sides["old"][0] if all(n in s for side in sides.values() for s in side)]
    rows = []
    for name in names:
        old = statistics.median(s[name] for s in sides["old"])
        new = statistics.median(s[name] for s in sides["new"])
        change = None if old == 0 else round(100.0 * (new - old) / old, 1)
        rows.append({"figure": name, "old": old, "new": new, "change_pct": change})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--old", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, interleaved")
    parser.add_argument("benchmark", help="generation, push, controlplane, ...")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    ns = parser.parse_args(argv)
    old = old_tree(ns.old)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for _ in range(ns.rounds):
        runs["old"].append(run_side(old, ns.benchmark, ns.args))
        runs["new"].append(run_side(ROOT, ns.benchmark, ns.args))
    rows = compare(runs)
    width = max((len(r["figure"]) for r in rows), default=10)
    print(f"{'figure':<{width}}  {'old':>12}  {'new':>12}  change")
    for r in rows:
        change = "" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"
        print(f"{r['figure']:<{width}}  {r['old']:>12.2f}  {r['new']:>12.2f}  {change}")
    out = RESULTS / "compare" / f"{ns.benchmark}.json"
    out.parent.mkdir(exist_ok=True)
    document = {
        "benchmark": ns.benchmark,
        "args": ns.args,
        "old": _git("rev-parse", "--short=12", ns.old),
        "new": _git("rev-parse", "--short=12", "HEAD") + (" + working tree" if _dirty() else ""),
        "rounds": ns.rounds,
        "rows": rows,
    }
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _dirty() -> bool:
    return bool(_git("status", "--porcelain", "--", "src"))


if __name__ == "__main__":
    sys.exit(main())
