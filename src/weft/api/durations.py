"""Istio duration strings ("1.5s", "100ms", "1h2m3.5s") as used by timeouts and intervals."""

from __future__ import annotations

import re

# Istio accepts Go's duration syntax: one or more <decimal><unit> terms, no spaces.
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")

_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

DURATION_HINT = 'write a number followed by a unit: "10s", "1.5s", "100ms", "1m", "1h30m"'


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError naming the problem otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string such as '1s', got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ValueError("duration is empty")
    if s.startswith("-"):
        raise ValueError(f"duration {text!r} is negative")
    if s.startswith("+"):
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        term = _TERM.match(s, pos)
        if term is None:
            raise ValueError(_explain(text, s, pos))
        total += float(term.group(1)) * _UNIT_SECONDS[term.group(2)]
        pos = term.end()
    return total


def _explain(original: str, s: str, pos: int) -> str:
    rest = s[pos:]
    number = re.match(r"\d+(?:\.\d*)?|\.\d+", rest)
    if number is not None and number.end() == len(rest):
        return f"duration {original!r} has no unit"
    if number is not None:
        unit = re.match(r"[A-Za-zµμ]+", rest[number.end() :])
        if unit is not None:
            return f"duration {original!r} has unknown unit {unit.group(0)!r}"
    return f"{original!r} is not a valid duration"
