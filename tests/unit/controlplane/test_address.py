"""Where CLI commands find the control plane: defaults, or WEFT_XDS / WEFT_ADMIN."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from weft.controlplane.address import admin_address, parse_host_port, xds_address
from weft.errors import WeftError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEFT_XDS", raising=False)
    monkeypatch.delenv("WEFT_ADMIN", raising=False)


def test_defaults_are_istiods_ports_on_loopback() -> None:
    assert xds_address() == ("127.0.0.1", 15010)
    assert admin_address() == ("127.0.0.1", 15014)


def test_empty_variables_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEFT_XDS", "")
    monkeypatch.setenv("WEFT_ADMIN", "")
    assert xds_address() == ("127.0.0.1", 15010)
    assert admin_address() == ("127.0.0.1", 15014)


def test_variables_point_each_address_independently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEFT_XDS", "127.0.0.1:25010")
    assert xds_address() == ("127.0.0.1", 25010)
    assert admin_address() == ("127.0.0.1", 15014)
    monkeypatch.setenv("WEFT_ADMIN", "localhost:25014")
    assert admin_address() == ("localhost", 25014)


def test_bracketed_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEFT_XDS", "[::1]:15010")
    assert xds_address() == ("::1", 15010)


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "127.0.0.1:",
        ":15010",
        "localhost:xds",
        "localhost:0",
        "localhost:65536",
        "localhost:-1",
        "[::1]",
    ],
)
@pytest.mark.parametrize(
    ("variable", "read"), [("WEFT_XDS", xds_address), ("WEFT_ADMIN", admin_address)]
)
def test_bad_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, read: Callable[[], tuple[str, int]], value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(WeftError) as caught:
        read()
    message = str(caught.value)
    # Names the variable and the value, and shows what a good one looks like.
    assert f"{variable}={value!r}" in message
    assert "HOST:PORT" in message and "127.0.0.1:15010" in message


def test_port_range_edges_are_accepted() -> None:
    assert parse_host_port("h:1", "V") == ("h", 1)
    assert parse_host_port("h:65535", "V") == ("h", 65535)
