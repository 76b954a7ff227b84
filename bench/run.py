"""Run every benchmark, write bench/results/<name>.json and refresh bench/README.md's table.

`make bench` runs this: python -m bench.run
"""

from __future__ import annotations

import sys
import time

from bench import dataplane, generation, push, report


def main() -> int:
    started = time.monotonic()
    benchmarks = (
        ("generation", generation.run),
        ("push", push.run),
        ("dataplane", dataplane.run),
    )
    for name, run in benchmarks:
        print(f"== {name}", flush=True)
        path = report.write(run())
        print(f"wrote {path}", flush=True)
    report.update_readme()
    print(f"all benchmarks done in {time.monotonic() - started:.0f} s; table in {report.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
