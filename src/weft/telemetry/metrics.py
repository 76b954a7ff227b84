"""Control-plane metrics in Prometheus format, with Istio's names where Istio has one.

Names, labels and buckets follow istiod (istio/istio pilot/pkg/xds/monitoring.go), so an Istio
user's queries and dashboards work unchanged; `exposition` writes them as istiod does.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from weft.telemetry import exposition

# istiod's buckets (push time .01-30 s, convergence .1-30 s), plus finer ones below them: Weft's
# pushes take milliseconds, and with istiod's buckets alone every quantile would read "< 0.1 s".
PUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # The first bucket whose upper bound (le) is >= value.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        total, out = 0, []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            out.append((repr(float(bound)) if bound != math.inf else "+Inf", float(total)))
        return out


_C = TypeVar("_C")


def _child(children: dict[str, _C], xds_type: str, make: Callable[[], _C]) -> _C:
    """The series for one xDS type, labelled as istiod labels it: `cds`, not `CDS`."""
    label = xds_type.lower()
    child = children.get(label)
    if child is None:
        child = children[label] = make()
    return child


class XdsTypeCounter:
    """A counter by xDS type, labelled as istiod labels it: `type="cds"`, not `type="CDS"`.

    Updated on every response to every proxy, so it is plain arithmetic (prometheus_client's
    own counters take a lock per update); the control plane updates it from its event loop
    only. Read at scrape time through `collect()`.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._name, self._doc = name, documentation
        self._children: dict[str, _Count] = {}
        registry.register(self)

    def labels(self, xds_type: str) -> _Count:
        return _child(self._children, xds_type, _Count)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=["type"])
        for label, child in sorted(self._children.items()):
            family.add_metric([label], child.value)
        yield family


class XdsHistogram:
    """A histogram (by xDS type when `by_type`), as cheap to update as XdsTypeCounter."""

    def __init__(
        self, name: str, documentation: str, registry: CollectorRegistry, by_type: bool
    ) -> None:
        self._name, self._doc, self._by_type = name, documentation, by_type
        self._children: dict[str, _Buckets] = {}
        self._all = _Buckets(PUSH_BUCKETS)
        registry.register(self)

    def labels(self, xds_type: str) -> _Buckets:
        return _child(self._children, xds_type, lambda: _Buckets(PUSH_BUCKETS))

    def observe(self, value: float) -> None:
        self._all.observe(value)

    def collect(self) -> Iterator[Metric]:
        if not self._by_type:
            family = HistogramMetricFamily(self._name, self._doc)
            family.add_metric([], self._all.cumulative(), self._all.sum)
            yield family
            return
        family = HistogramMetricFamily(self._name, self._doc, labels=["type"])
        for label, child in sorted(self._children.items()):
            family.add_metric([label], child.cumulative(), child.sum)
        yield family


class ControlPlaneMetrics:
    """One registry per control plane, so several can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge(
            "pilot_xds",
            "Connected xDS proxies, by their agent's version.",
            ["version"],
            registry=self.registry,
        )
        self.pushes = XdsTypeCounter(
            "pilot_xds_pushes", "xDS responses sent, by type.", self.registry
        )
        self.rejects = XdsTypeCounter(
            "pilot_total_xds_rejects",
            "xDS responses a proxy rejected (NACK), by type.",
            self.registry,
        )
        self.push_time = XdsHistogram(
            "pilot_xds_push_time",
            "Seconds to generate and send one xDS response to one proxy, by type.",
            self.registry,
            by_type=True,
        )
        self.convergence = XdsHistogram(
            "pilot_proxy_convergence_time",
            "Seconds from a config change to its push to a proxy.",
            self.registry,
            by_type=False,
        )
        self.config_errors = Gauge(
            "weft_config_problems",
            "Config files or objects currently rejected.",
            registry=self.registry,
        )

        # Set by the ADS server: what generation leaves out, read at scrape time.
        self.left_out: Callable[[], Sequence[_LeftOut]] = list
        self.registry.register(_LeftOutCollector(self))

    def sent(self, xds_type: str, seconds: float) -> None:
        """One xDS response sent to one proxy, `seconds` after its generation began."""
        self.pushes.labels(xds_type).inc()
        self.push_time.labels(xds_type).observe(seconds)

    def render(self) -> bytes:
        """The `/metrics` body, served with `exposition.CONTENT_TYPE`."""
        return exposition.render(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One series' value under the name and labels a scraper sees, or None if absent."""
        wanted = labels or {}
        for family in exposition.exposed_families(self.registry):
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return sample.value
        return None


class _LeftOut(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


class _LeftOutCollector:
    """`weft_generation_problems{kind,namespace,name}`: 1 for each object generation leaves
    out because generating with it failed (see `weft proxy-status`)."""

    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "weft_generation_problems",
            "Objects left out of generated config because generating with them failed.",
            labels=["kind", "namespace", "name"],
        )
        for entry in self._metrics.left_out():
            family.add_metric([entry.kind, entry.namespace, entry.name], 1)
        yield family
