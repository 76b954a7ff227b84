"""Memory of running processes, read from /proc (Linux only)."""

from __future__ import annotations

from pathlib import Path


def rss_mib(pid: int) -> float | None:
    """Resident set size (VmRSS) of `pid` in MiB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every one of its threads."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return sorted(set(found))


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def child_named(pid: int, name: str) -> int | None:
    """The first direct child of `pid` whose command name is `name`."""
    return next((c for c in children(pid) if command_name(c) == name), None)
