"""Small timing and summary helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

_T = TypeVar("_T")


def timed_ms(action: Callable[[], _T]) -> tuple[float, _T]:
    """(milliseconds taken, result) of one call."""
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def median_ms(action: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """Median of `runs` timed calls, and every sample."""
    samples = [timed_ms(action)[0] for _ in range(runs)]
    return statistics.median(samples), samples


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50, min and max of samples (milliseconds), rounded for reading."""
    return {
        "p50": round(statistics.median(samples), 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
        "n": len(samples),
    }
