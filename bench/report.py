"""Results: one JSON file per benchmark under bench/results/, and the table in bench/README.md.

The README's table is always rendered from the JSON files, so the two never disagree.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from bench import machine

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
START = "<!-- results:start -->"
END = "<!-- results:end -->"
# Order of the tables in the README; results for other names follow, by name.
ORDER = ("generation", "push", "dataplane", "controlplane")


def result(
    name: str, command: str, figures: dict[str, Any], table: dict[str, Any]
) -> dict[str, Any]:
    """A benchmark's result: what ran, when, where, its figures and its README table."""
    return {
        "name": name,
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "figures": figures,
        "table": table,
    }


def write(res: dict[str, Any]) -> Path:
    """Write results/<name>.json atomically and refresh the README table."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{res['name']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, path)
    update_readme()
    return path


def load_all() -> list[dict[str, Any]]:
    found = {}
    for path in sorted(RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        found[data["name"]] = data
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return [found[n] for n in names]


def render(results: list[dict[str, Any]]) -> str:
    """Markdown: per benchmark, its command, date and machine, then its table."""
    if not results:
        return "No results yet: run `make bench`."
    parts: list[str] = []
    for res in results:
        table = res["table"]
        lines = [
            f"### {res['name']}",
            "",
            f"`{res['command']}` — {res['date']} — {machine.one_line(res['machine'])}",
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "|" + "|".join("---" for _ in table["columns"]) + "|",
        ]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["rows"]]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def update_readme() -> bool:
    """Replace the text between the README's markers with the current tables."""
    if not README.exists():
        return False
    text = README.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{README} has no '{START}' ... '{END}' section to fill")
    body = render(load_all())
    new = f"{text[: start + len(START)]}\n{body}\n{text[end:]}"
    if new == text:
        return False
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, README)
    return True
