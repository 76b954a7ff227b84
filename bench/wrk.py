"""wrk as the load generator: a Lua script per run that sets the request, paces it if asked,
and prints its latency distribution as JSON when the run is done.

wrk has no rate option. A paced load gives its one thread a schedule of send times, one every
1/rate seconds, shared by the thread's connections: `delay()` hands each connection the next
free slot (a slot missed while a response was late is dropped, not made up in a burst). wrk
times a request from when it is written, so the wait never counts as latency.

`done()` prints wrk's own exact percentiles on a fine grid (every 0.1 up to 99, every 0.01
above), so that several runs of one load can be merged: the merged distribution is the
request-weighted mixture of theirs, exact to the grid's step.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "WRK_JSON "
PERCENTILES = (50, 90, 99, 99.9)
TIMEOUT_S = 5  # a request slower than this counts as a timeout error


class WrkMissing(RuntimeError):
    """wrk is not installed."""


@dataclass(frozen=True)
class Load:
    """Connections and, for a paced load, the total rate; `rate=None` is a closed loop."""

    name: str
    connections: int
    rate: int | None
    duration_s: float


@dataclass(frozen=True)
class Request:
    """Where wrk connects, and what it sends: `path` may be an absolute URL, for a proxy."""

    port: int
    path: str = "/"
    host: str = ""


_LUA = """-- generated for one wrk run
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} weft_timespec;
int clock_gettime(int clock, weft_timespec *ts);
]]
local ts = ffi.new("weft_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = "GET"
wrk.path = {path}
{host_line}
local period_ms = {period_ms}
local next_ms = nil

{delay}

function done(summary, latency, requests)
  local e = summary.errors
  local q = {{}}
  local function add(p)
    q[#q + 1] = string.format("[%.2f, %d]", p, latency:percentile(p))
  end
  for i = 1, 990 do add(i / 10) end
  for i = 1, 99 do add(99 + i / 100) end
  q[#q + 1] = string.format("[100, %d]", latency.max)
  io.write(string.format(
    '{marker}{{"requests": %d, "duration_us": %d, "bytes": %d, '
    .. '"errors": {{"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}, '
    .. '"latency_us": {{"min": %d, "max": %d, "mean": %.3f, "quantiles": [%s]}}}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, table.concat(q, ", ")))
end
"""

_DELAY = """function delay()
  local now = now_ms()
  if next_ms == nil or next_ms < now then
    next_ms = now
  end
  local wait = next_ms - now
  next_ms = next_ms + period_ms
  return math.floor(wait + 0.5)
end"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string


def script(request: Request, load: Load) -> str:
    """The Lua script for one run."""
    host = f"wrk.headers['Host'] = {_lua_string(request.host)}" if request.host else ""
    return _LUA.format(
        path=_lua_string(request.path),
        host_line=host,
        period_ms=repr(1000.0 / load.rate) if load.rate else "0",
        delay=_DELAY if load.rate else "",
        marker=MARKER,
    )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(
            "wrk is not installed: run `make bench` (it installs Debian's wrk), "
            "or `apt-get install -y wrk`"
        )
    return found


def command(request: Request, load: Load, script_path: Path) -> list[str]:
    # One thread: on a small machine wrk must not take more than one core from the proxies,
    # and a paced load needs one schedule shared by all its connections.
    return [
        wrk_binary(),
        "-t1",
        f"-c{load.connections}",
        f"-d{load.duration_s:g}s",
        f"--timeout={TIMEOUT_S}s",
        "-s",
        str(script_path),
        f"http://127.0.0.1:{request.port}/",
    ]


def parse(stdout: str) -> dict[str, Any]:
    """What `done()` printed: counts, errors and the latency quantiles of one run."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no results:\n{stdout[-2000:]}")
    raw: dict[str, Any] = json.loads(line[len(MARKER) :])
    return raw


class _Distribution:
    """One run's latency CDF, read off its quantile grid: F(x) = the largest p with q(p) <= x."""

    def __init__(self, raw: dict[str, Any]) -> None:
        points = raw["latency_us"]["quantiles"]
        self.values = [int(v) for _, v in points]
        self.fractions = [p / 100 for p, _ in points]
        self.weight = int(raw["requests"])

    def cdf(self, x: int) -> float:
        i = bisect.bisect_right(self.values, x)
        return self.fractions[i - 1] if i else 0.0


def percentiles(raws: list[dict[str, Any]], ps: tuple[float, ...]) -> dict[float, int]:
    """Latency percentiles (us) of the runs taken together, each run weighted by its requests."""
    runs = [_Distribution(r) for r in raws if r["requests"]]
    total = sum(r.weight for r in runs)
    candidates = sorted({v for r in runs for v in r.values})
    found: dict[float, int] = {}
    for p in ps:
        target = p / 100 - 1e-9
        found[p] = next(
            (x for x in candidates if sum(r.weight * r.cdf(x) for r in runs) >= target * total),
            candidates[-1] if candidates else 0,
        )
    return found


def summarize(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one or more runs of the same load, merged; latencies in ms."""
    requests = sum(r["requests"] for r in raws)
    seconds = sum(r["duration_us"] for r in raws) / 1e6
    errors = {k: sum(r["errors"][k] for r in raws) for k in raws[0]["errors"]}
    counted = [r for r in raws if r["requests"]]
    found = percentiles(counted, PERCENTILES)
    mean = sum(r["latency_us"]["mean"] * r["requests"] for r in counted) / max(requests, 1)
    return {
        "requests": requests,
        "seconds": round(seconds, 2),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "errors": errors,
        "error_count": sum(errors.values()),
        "bytes_per_request": round(sum(r["bytes"] for r in raws) / requests) if requests else 0,
        "latency_ms": {
            **{f"p{p:g}": found[p] / 1000 for p in PERCENTILES},
            "mean": round(mean / 1000, 3),
            "min": min((r["latency_us"]["min"] for r in counted), default=0) / 1000,
            "max": max((r["latency_us"]["max"] for r in counted), default=0) / 1000,
        },
    }


async def run(request: Request, load: Load) -> dict[str, Any]:
    """Run wrk once, bounded by the load's duration plus a margin; what `parse` reads."""
    with tempfile.TemporaryDirectory(prefix="weft-wrk-") as tmp:
        path = Path(tmp) / "load.lua"
        path.write_text(script(request, load))
        proc = await asyncio.create_subprocess_exec(
            *command(request, load, path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), load.duration_s + TIMEOUT_S + 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"wrk did not finish a {load.duration_s:g} s run in time") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    return parse(text)
