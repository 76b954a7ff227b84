"""Rules shared by several kinds: hosts, string matches, weights, exportTo, TLS, selectors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from weft.api.base import StringMatch
from weft.api.hosts import host_error, is_cidr, is_ip
from weft.api.regex import RE2_HINT, re2_error
from weft.errors import ConfigProblem

Problems = Iterator[ConfigProblem]


class Weighted(Protocol):
    @property
    def weight(self) -> int: ...


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HOST_HINT = "use a DNS name such as 'reviews', 'reviews.prod.svc.cluster.local' or '*.example.com'"


def key_path(field: str, key: str) -> str:
    """The field path of a map entry; keys that are not plain words are quoted."""
    if _PLAIN_KEY.match(key):
        return f"{field}.{key}"
    return f"{field}[{json.dumps(key, ensure_ascii=False)}]"


def problem(field: str, message: str, hint: str | None = None) -> ConfigProblem:
    return ConfigProblem(message=message, field=field, hint=hint)


def is_namespace(value: str) -> bool:
    return len(value) <= 63 and bool(_NAMESPACE.match(value))


def check_host(field: str, host: str, *, allow_wildcard: bool = True) -> Problems:
    error = host_error(host, allow_wildcard=allow_wildcard)
    if error is not None:
        yield problem(field, error, HOST_HINT)


def check_hosts(field: str, hosts: Sequence[str], *, what: str) -> Problems:
    if not hosts:
        yield problem(field, f"{what} has no hosts", "list at least one host")
    for i, host in enumerate(hosts):
        yield from check_host(f"{field}[{i}]", host)


def check_regex(field: str, pattern: str) -> Problems:
    error = re2_error(pattern)
    if error is not None:
        yield problem(field, error, RE2_HINT)


def check_string_match(field: str, match: StringMatch, *, presence_ok: bool = False) -> Problems:
    """Exactly one of exact/prefix/regex; an empty match is a presence test where allowed."""
    kinds = match.kinds_set()
    if len(kinds) > 1:
        yield problem(
            field,
            f"sets {' and '.join(kinds)}; a match takes exactly one of exact, prefix or regex",
            f"keep only one of {', '.join(kinds)}",
        )
    elif not kinds and not presence_ok:
        yield problem(
            field,
            "is empty; a match takes exactly one of exact, prefix or regex",
            "add 'exact: <value>', 'prefix: <value>' or 'regex: <pattern>'",
        )
    if match.regex is not None:
        yield from check_regex(f"{field}.regex", match.regex)


def check_string_matches(
    field: str, matches: Mapping[str, StringMatch], *, presence_ok: bool = True
) -> Problems:
    for name, match in matches.items():
        if not name:
            yield problem(field, "has an empty name", "name the header or parameter to match")
        yield from check_string_match(key_path(field, name), match, presence_ok=presence_ok)


def check_weights(field: str, destinations: Sequence[Weighted]) -> Problems:
    """With one destination the weight is ignored; with several they must add up to 100."""
    negative = False
    for i, dest in enumerate(destinations):
        if dest.weight < 0:
            negative = True
            yield problem(
                f"{field}[{i}].weight",
                f"weight {dest.weight} is negative",
                "use a weight from 0 to 100",
            )
    if len(destinations) > 1 and not negative:
        total = sum(d.weight for d in destinations)
        if total != 100:
            yield problem(
                field,
                f"weights sum to {total}, must sum to 100",
                "adjust the 'weight' of each destination so they add up to 100",
            )


def check_destination_host(field: str, host: str) -> Problems:
    yield from check_host(f"{field}.host", host)


def check_export_to(field: str, export_to: Sequence[str]) -> Problems:
    for i, value in enumerate(export_to):
        if value not in (".", "*", "~") and not is_namespace(value):
            yield problem(
                f"{field}[{i}]",
                f"{value!r} is not a namespace",
                "use '.' (this namespace), '*' (all namespaces), '~' (none) or a namespace name",
            )


def check_addresses(field: str, addresses: Sequence[str]) -> Problems:
    for i, address in enumerate(addresses):
        if not is_cidr(address):
            yield problem(
                f"{field}[{i}]",
                f"{address!r} is not an IP address or CIDR block",
                "use an address such as '10.0.0.1' or a block such as '10.0.0.0/16'",
            )


def check_endpoint_address(field: str, address: str, *, resolution: str | None = None) -> Problems:
    """A workload address: an IP, a DNS name, or a Unix socket (unix:///path). With the
    `resolution` of the ServiceEntry it is an endpoint of: only an IP or a socket unless
    the entry resolves names (DNS), and never a socket if it does."""
    resolves = resolution in ("DNS", "DNS_ROUND_ROBIN")
    if address.startswith("unix://"):
        if not address[len("unix://") :].startswith("/"):
            yield problem(field, f"{address!r} is not an absolute Unix socket path")
        elif resolves:
            yield problem(
                field,
                f"with resolution {resolution}, {address!r} cannot be resolved",
                "use resolution STATIC for Unix socket endpoints",
            )
        return
    if is_ip(address):
        return
    if resolution is not None and not resolves:
        yield problem(
            field,
            f"{address!r} is not an IP address",
            f"with resolution {resolution}, endpoints need IP addresses (or unix:///path); "
            "use resolution DNS for names",
        )
        return
    error = host_error(address, allow_wildcard=False, allow_ip=True)
    if error is not None:
        yield problem(field, error, "use an IP address, a DNS name or unix:///path/to/socket")


def check_labels(field: str, labels: Mapping[str, str]) -> Problems:
    for name in labels:
        if not name:
            yield problem(field, "has a label with an empty name", "give every label a name")
