"""Host names as Istio uses them: short-name resolution, wildcard matching, syntax checks."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?$")
_MAX_HOST = 255
_MAX_LABEL = 63


def fqdn(host: str, namespace: str, domain_suffix: str = "cluster.local") -> str:
    """Resolve a short service name the way Istio does: "reviews" -> "reviews.<ns>.svc.<suffix>".

    Names with a dot, wildcards and IP addresses are already complete and come back unchanged.
    """
    # Without a dot only an IPv6 address can be an IP; the cheap test first (a hot path).
    if not host or host.startswith("*") or "." in host or (":" in host and is_ip(host)):
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"


def host_matches(pattern: str, host: str) -> bool:
    """True when `pattern` (possibly "*" or "*.example.com") covers `host`.

    `host` may itself be a wildcard: "*.example.com" covers "*.api.example.com" but not
    "*.com". A wildcard covers any number of leading labels, never the bare suffix.
    """
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern == "*":
        return True
    if not pattern.startswith("*"):
        return pattern == host
    suffix = pattern[1:]  # ".example.com"
    if host.startswith("*"):
        return host[1:].endswith(suffix)
    return host.endswith(suffix) and len(host) > len(suffix)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def host_error(host: str, *, allow_wildcard: bool = True, allow_ip: bool = True) -> str | None:
    """Why `host` is not a valid (optionally wildcard) DNS name, or None when it is."""
    if not host:
        return "host name is empty"
    if allow_ip and is_ip(host):
        return None
    if len(host) > _MAX_HOST:
        return f"host name {host!r} is longer than {_MAX_HOST} characters"
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            return f"host name {host!r} may not be a wildcard here"
        labels = labels[1:]
    for label in labels:
        if "*" in label:
            return f"host name {host!r}: '*' is only allowed as the whole first label"
        if len(label) > _MAX_LABEL:
            return f"host name {host!r}: label {label!r} is longer than {_MAX_LABEL} characters"
        if not _LABEL.match(label):
            return (
                f"host name {host!r} is not a valid DNS name: label {label!r} may contain only "
                "letters, digits and '-', and must start and end with a letter or digit"
            )
    return None


def split_namespaced(host: str) -> tuple[str, str] | None:
    """Split "namespace/dnsName" (as in Sidecar egress and Gateway hosts); None without a '/'."""
    namespace, sep, name = host.partition("/")
    if not sep:
        return None
    return namespace, name
