"""`/metrics` reads as istiod's does: the series names, labels and `le` values Istio users query."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.parser import text_string_to_metric_families

from weft.telemetry import exposition
from weft.telemetry.exposition import go_float
from weft.telemetry.metrics import ControlPlaneMetrics


def lines(metrics: ControlPlaneMetrics) -> list[str]:
    return metrics.render().decode().splitlines()


def test_counters_have_istios_names_and_type_labels() -> None:
    metrics = ControlPlaneMetrics()
    metrics.pushes.labels("CDS").inc(3)
    metrics.rejects.labels("LDS").inc()
    out = lines(metrics)
    assert "# TYPE pilot_xds_pushes counter" in out
    assert 'pilot_xds_pushes{type="cds"} 3' in out
    assert "# TYPE pilot_total_xds_rejects counter" in out
    assert 'pilot_total_xds_rejects{type="lds"} 1' in out
    text = metrics.render().decode()
    assert "_total{" not in text and "_total " not in text
    assert "_created" not in text


def test_gauge_counts_connected_proxies() -> None:
    metrics = ControlPlaneMetrics()
    metrics.connected.labels("0.1.0").set(2)
    assert 'pilot_xds{version="0.1.0"} 2' in lines(metrics)
    assert metrics.value("pilot_xds", {"version": "0.1.0"}) == 2.0


def test_histograms_have_istios_buckets_written_as_go_writes_them() -> None:
    metrics = ControlPlaneMetrics()
    metrics.convergence.observe(0.004)
    metrics.push_time.labels("RDS").observe(2.0)
    out = lines(metrics)
    # Every boundary istiod uses, so `{le="1"}` finds the same bucket as against istiod.
    for le in ("0.1", "0.5", "1", "3", "5", "10", "20", "30"):
        assert f'pilot_proxy_convergence_time_bucket{{le="{le}"}} 1' in out
    assert 'pilot_proxy_convergence_time_bucket{le="0.0025"} 0' in out
    assert 'pilot_proxy_convergence_time_bucket{le="0.005"} 1' in out
    assert 'pilot_proxy_convergence_time_bucket{le="+Inf"} 1' in out
    assert "pilot_proxy_convergence_time_count 1" in out
    for le in ("0.01", "0.1", "1"):
        assert f'pilot_xds_push_time_bucket{{type="rds",le="{le}"}} 0' in out
    assert 'pilot_xds_push_time_bucket{type="rds",le="3"} 1' in out
    assert 'pilot_xds_push_time_sum{type="rds"} 2' in out


def test_a_standard_parser_reads_it_back() -> None:
    metrics = ControlPlaneMetrics()
    metrics.pushes.labels("EDS").inc()
    metrics.convergence.observe(0.2)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["pilot_xds_pushes"].type == "counter"
    assert families["pilot_proxy_convergence_time"].type == "histogram"
    assert families["weft_config_problems"].type == "gauge"


def test_help_and_label_values_are_escaped() -> None:
    registry = CollectorRegistry()
    Gauge("weft_example", 'a "help"\nwith \\ newline', ["path"], registry=registry).labels(
        'C:\\dir "x"\n'
    ).set(1)
    out = exposition.render(registry).decode().splitlines()
    assert out[0] == '# HELP weft_example a "help"\\nwith \\\\ newline'
    assert out[2] == 'weft_example{path="C:\\\\dir \\"x\\"\\n"} 1'


def test_a_type_istiod_never_exports_is_refused() -> None:
    registry = CollectorRegistry()
    Info("weft_build", "Build.", registry=registry).info({"version": "1"})
    with pytest.raises(ValueError, match="weft_build has type 'info'"):
        exposition.render(registry)


def test_an_empty_registry_renders_nothing() -> None:
    assert exposition.render(CollectorRegistry()) == b""


def test_a_counter_without_a_label_has_no_suffix() -> None:
    registry = CollectorRegistry()
    Counter("weft_restarts", "Restarts.", registry=registry).inc()
    assert exposition.render(registry).decode().splitlines()[-1] == "weft_restarts 1"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (30.0, "30"),
        (0.005, "0.005"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e6, "1e+06"),
        (1.7e9, "1.7e+09"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (0.000123, "0.000123"),
        (1.5e-7, "1.5e-07"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_numbers_are_written_as_go_writes_them(value: float, text: str) -> None:
    assert go_float(value) == text
