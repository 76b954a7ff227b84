"""Control-plane metrics in Prometheus format, with Istio's names where Istio has one.

Names, labels and buckets follow istiod (istio/istio pilot/pkg/xds/monitoring.go), so an Istio
user's queries and dashboards work unchanged; `exposition` writes them as istiod does.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from weft.telemetry import exposition

# istiod's buckets (push time .01-30 s, convergence .1-30 s), plus finer ones below them: Weft's
# pushes take milliseconds, and with istiod's buckets alone every quantile would read "< 0.1 s".
PUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)


class XdsTypeCounter:
    """A counter by xDS type, labelled as istiod labels it: `type="cds"`, not `type="CDS"`."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._counter = Counter(name, documentation, ["type"], registry=registry)

    def labels(self, xds_type: str) -> Counter:
        return self._counter.labels(xds_type.lower())


class XdsTypeHistogram:
    """A histogram by xDS type, labelled as istiod labels it."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            name, documentation, ["type"], buckets=PUSH_BUCKETS, registry=registry
        )

    def labels(self, xds_type: str) -> Histogram:
        return self._histogram.labels(xds_type.lower())


class ControlPlaneMetrics:
    """One registry per control plane, so several can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge("pilot_xds", "Connected xDS proxies.", registry=self.registry)
        self.pushes = XdsTypeCounter(
            "pilot_xds_pushes", "xDS responses sent, by type.", self.registry
        )
        self.rejects = XdsTypeCounter(
            "pilot_total_xds_rejects",
            "xDS responses a proxy rejected (NACK), by type.",
            self.registry,
        )
        self.push_time = XdsTypeHistogram(
            "pilot_xds_push_time",
            "Seconds to generate and send one xDS response to one proxy, by type.",
            self.registry,
        )
        self.convergence = Histogram(
            "pilot_proxy_convergence_time",
            "Seconds from a config change to its push to a proxy.",
            buckets=PUSH_BUCKETS,
            registry=self.registry,
        )
        self.config_errors = Gauge(
            "weft_config_problems",
            "Config files or objects currently rejected.",
            registry=self.registry,
        )

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
