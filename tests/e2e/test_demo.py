"""`weft demo --check`, exactly as a user runs it: every step passes and nothing is left."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def processes_marked(marker: str) -> list[int]:
    """PIDs whose environment carries `marker`: the demo and everything it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile, or not ours to read
    return found


def test_demo_check_passes_every_step_and_cleans_up() -> None:
    marker = f"WEFT_TEST_MARK={uuid.uuid4().hex}"
    key, value = marker.split("=")
    result = subprocess.run(
        [sys.executable, "-m", "weft", "demo", "--check", "--requests", "100"],
        capture_output=True, text=True, timeout=120, env={**os.environ, key: value},
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(steps) == 7 and all(s.startswith("PASS") for s in steps), out
    for words in ("80/20 split", "jason -> v2", "STRICT mTLS", "AuthorizationPolicy", "JWT"):
        assert any(words in s for s in steps), (words, out)
    # Every process the demo started (they inherit its environment) has exited.
    assert processes_marked(marker) == []
