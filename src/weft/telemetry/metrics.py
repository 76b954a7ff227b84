"""Control-plane metrics in Prometheus format, with Istio's names where Istio has one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ControlPlaneMetrics:
    """One registry per control plane, so several can live in one process (tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge("pilot_xds", "Connected xDS proxies.", registry=self.registry)
        self.pushes = Counter(
            "pilot_xds_pushes", "xDS responses sent, by type.", ["type"], registry=self.registry
        )
        self.rejects = Counter(
            "pilot_total_xds_rejects",
            "xDS responses a proxy rejected (NACK), by type.",
            ["type"],
            registry=self.registry,
        )
        self.push_time = Histogram(
            "pilot_xds_push_time",
            "Seconds to generate and send one push to one proxy.",
            registry=self.registry,
        )
        self.convergence = Histogram(
            "pilot_proxy_convergence_time",
            "Seconds from a config change to its push to a proxy.",
            registry=self.registry,
        )
        self.config_errors = Gauge(
            "weft_config_problems",
            "Config files or objects currently rejected.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
