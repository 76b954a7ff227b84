"""`weft demo --check`, exactly as a user runs it: every step passes and nothing is left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (from /proc, IPv4 and IPv6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_demo_check_passes_every_step_and_cleans_up() -> None:
    before = listening_ports()
    result = subprocess.run(
        [sys.executable, "-m", "weft", "demo", "--check", "--requests", "100"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(steps) == 7 and all(s.startswith("PASS") for s in steps), out
    for words in ("80/20 split", "jason -> v2", "STRICT mTLS", "AuthorizationPolicy", "JWT"):
        assert any(words in s for s in steps), (words, out)
    # Every process the demo started has exited: nothing new is listening.
    assert listening_ports() - before == set()
