"""Where the control plane is: defaults, or WEFT_XDS / WEFT_ADMIN as HOST:PORT."""

from __future__ import annotations

import os

from weft.errors import WeftError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_XDS_PORT = 15010
DEFAULT_ADMIN_PORT = 15014
DEFAULT_CA_PORT = 15012


def parse_host_port(value: str, variable: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WeftError(f"{variable}={value!r} is not HOST:PORT (e.g. 127.0.0.1:15010)")
    return host.strip("[]"), int(port)


def xds_address() -> tuple[str, int]:
    value = os.environ.get("WEFT_XDS")
    if value:
        return parse_host_port(value, "WEFT_XDS")
    return DEFAULT_HOST, DEFAULT_XDS_PORT


def admin_address() -> tuple[str, int]:
    value = os.environ.get("WEFT_ADMIN")
    if value:
        return parse_host_port(value, "WEFT_ADMIN")
    return DEFAULT_HOST, DEFAULT_ADMIN_PORT
