"""CPU time and memory of running processes, from /proc (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CpuTimes = tuple[float, float]  # user, system: seconds


def cpu_times(pid: int) -> CpuTimes | None:
    """User and system CPU time of every thread of `pid`; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS  # utime, stime


def sample(pids: dict[str, int]) -> dict[str, CpuTimes | None]:
    return {name: cpu_times(pid) for name, pid in pids.items()}


def used_since(
    before: dict[str, CpuTimes | None], pids: dict[str, int]
) -> dict[str, CpuTimes | None]:
    """(user, system) CPU seconds each named process used since `before`, from `sample`."""
    now = sample(pids)
    used: dict[str, CpuTimes | None] = {}
    for name in pids:
        a, b = before.get(name), now[name]
        used[name] = None if a is None or b is None else (b[0] - a[0], b[1] - a[1])
    return used


def memory_mib(pid: int) -> dict[str, float] | None:
    """VmRSS and its parts: RssAnon (private to the process), RssFile (mapped files, such
    as the executable, shared with every process running it); Pss splits shared pages
    among their sharers. MiB; None if the process is gone."""
    wanted = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "Pss:": "pss"}
    found: dict[str, float] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        rollup = Path(f"/proc/{pid}/smaps_rollup")
        if rollup.exists():
            lines += rollup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted and wanted[parts[0]] not in found:
            found[wanted[parts[0]]] = round(int(parts[1]) / 1024, 1)
    return found


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, all cores, from /proc/stat.

    Stolen time is when the hypervisor ran someone else on our virtual CPUs.
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def own_cpu_seconds() -> tuple[float, float]:
    """(this process, its children that have been waited for) CPU seconds."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system
