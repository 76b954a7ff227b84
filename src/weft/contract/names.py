"""Kubernetes' rules for names, labels and ports, as value types the messages are built from.

A name that breaks these rules becomes part of a host name, a virtual host domain or a
listener address, and Envoy then refuses the config that holds it: it is refused here, at
the edge, with the rule it broke.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from weft.api.base import PortNumber, PortProtocol, invalid

__all__ = [
    "DnsLabel",
    "DnsSubdomain",
    "EmptyIsNone",
    "IpAddress",
    "LabelKey",
    "LabelValue",
    "Labels",
    "PortName",
    "PortNumber",
    "PortProtocol",
    "ShortText",
    "dns_label_error",
]

# fullmatch throughout: `$` would also match before a trailing newline.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

LABEL_HINT = (
    "a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending "
    "with a letter or digit"
)
SUBDOMAIN_HINT = (
    "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', each part "
    "starting and ending with a letter or digit"
)
LABEL_KEY_HINT = (
    "a label key: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, "
    "'-', '_' and '.', starting and ending with a letter or digit"
)
LABEL_VALUE_HINT = (
    "a label value: empty, or at most 63 letters, digits, '-', '_' and '.', starting and "
    "ending with a letter or digit"
)


def dns_label_error(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label (a namespace or service name), or None."""
    if len(value) > 63 or not _LABEL.fullmatch(value):
        return f"{value!r} is not a DNS-1123 label"
    return None


def _dns_label(value: str) -> str:
    error = dns_label_error(value)
    if error is not None:
        raise invalid(error, f"use {LABEL_HINT}")
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise invalid(f"{value!r} is not a DNS-1123 subdomain", f"use {SUBDOMAIN_HINT}")
    return value


def _label_key(value: str) -> str:
    prefix, slash, name = value.rpartition("/")
    good_prefix = not slash or (len(prefix) <= 253 and _SUBDOMAIN.fullmatch(prefix) is not None)
    if not good_prefix or len(name) > 63 or not _QUALIFIED.fullmatch(name):
        raise invalid(f"{value!r} is not a valid label key", f"use {LABEL_KEY_HINT}")
    return value


def _label_value(value: str) -> str:
    if value and (len(value) > 63 or not _QUALIFIED.fullmatch(value)):
        raise invalid(f"{value!r} is not a valid label value", f"use {LABEL_VALUE_HINT}")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid(
            f"{value!r} is not an IP address", "use an IPv4 or IPv6 address such as 127.0.0.1"
        ) from None


def _printable(value: str) -> str:
    if not value.isprintable():
        raise invalid(f"{value!r} holds control characters", "use printable text")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
"""A namespace or service name, as Kubernetes allows them."""

DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]
"""An object name (workload, WorkloadGroup) or service account name."""

LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Labels = dict[LabelKey, LabelValue]

PortName = Annotated[str, AfterValidator(_dns_label)]
"""A service port's name (Kubernetes: a DNS-1123 label, e.g. `http-web`)."""

IpAddress = Annotated[str, AfterValidator(_ip_address)]
"""An IPv4 or IPv6 address, kept in its normal written form."""

ShortText = Annotated[str, Field(max_length=128), AfterValidator(_printable)]
"""Free text that ends up in logs, tables and metric labels: short and printable."""


def empty_is_none(value: Any) -> Any:
    """An empty string means 'not given', as an absent field does."""
    return None if value == "" else value


EmptyIsNone = BeforeValidator(empty_is_none)
