"""The machine a result was measured on: cores, memory, CPU, Python and Envoy versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from typing import Any

from weft.agent.envoy import envoy_binary


def cores() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    try:
        out = subprocess.run(["nproc"], capture_output=True, text=True, timeout=5, check=True)
        return int(out.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return len(os.sched_getaffinity(0))


def memory_gib() -> float:
    """MemTotal from /proc/meminfo, in GiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def envoy_version() -> str:
    """The release from `envoy --version`, e.g. 1.40.0/Clean/RELEASE/BoringSSL."""
    try:
        out = subprocess.run(
            [str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    found = re.search(r"version:\s*\S+?/(\S+)", out.stdout)
    return found.group(1) if found else out.stdout.strip() or "unknown"


def describe() -> dict[str, Any]:
    return {
        "cores": cores(),
        "memory_gib": round(memory_gib(), 1),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "envoy": envoy_version(),
    }


def one_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, Envoy {machine['envoy']}"
    )
