"""Prometheus text exposition written the way istiod writes it, so Istio's queries work unchanged.

istiod exports through OpenTelemetry's Prometheus exporter with `WithoutCounterSuffixes`
(istio/istio pkg/monitoring/prometheus.go): a counter is `pilot_xds_pushes`, not
`pilot_xds_pushes_total`, and there are no `_created` series. Numbers are formatted as Go does
(`le="1"`, not `le="1.0"`): Prometheus 2 compares `le` as a string, so `{le="1"}` would
otherwise match nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# OpenMetrics family types as the 0.0.4 text format names them; others have no Istio spelling.
_TEXT_TYPES = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "unknown": "untyped",
}


@dataclass(frozen=True)
class ExposedSample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class ExposedFamily:
    name: str
    help: str
    type: str
    samples: list[ExposedSample]


def exposed_families(registry: Collector) -> Iterator[ExposedFamily]:
    """Every family of `registry` with the series names and label values a scraper sees."""
    for family in registry.collect():
        text_type = _TEXT_TYPES.get(family.type)
        if text_type is None:
            raise ValueError(
                f"metric {family.name} has type {family.type!r}, which istiod never exports: "
                f"use one of {', '.join(sorted(_TEXT_TYPES))}"
            )
        samples = []
        for s in family.samples:
            if s.name == f"{family.name}_created":
                continue
            name = family.name if family.type == "counter" else s.name
            labels = dict(s.labels)
            if "le" in labels:
                labels["le"] = go_float(float(labels["le"]))
            samples.append(ExposedSample(name, labels, s.value))
        yield ExposedFamily(family.name, family.documentation, text_type, samples)


def render(registry: Collector) -> bytes:
    lines: list[str] = []
    for family in exposed_families(registry):
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for s in family.samples:
            lines.append(f"{s.name}{_label_set(s.labels)} {go_float(s.value)}")
    return ("\n".join(lines) + "\n").encode() if lines else b""


def go_float(value: float) -> str:
    """As Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it: `1`, `0.005`, `1.7e+09`, `+Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    # repr() gives the shortest digits that read back as the same float, as Go's -1 does.
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # digits before the decimal point
    prefix = "-" if sign else ""
    scientific = point - 1
    if scientific < -4 or scientific >= 6:  # Go's rule for the shortest 'g' form
        fraction = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{prefix}{digits[0]}{fraction}e{scientific:+03d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _label_set(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + pairs + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
