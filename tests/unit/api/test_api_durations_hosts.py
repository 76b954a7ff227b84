from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weft.api import fqdn, host_matches, parse_duration
from weft.api.hosts import host_error


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("1.5s", 1.5),
        ("100ms", 0.1),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1h2m3.5s", 3723.5),
        ("10us", 10e-6),
        ("250ns", 250e-9),
        ("0s", 0.0),
        ("0", 0.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "duration is empty"),
        ("10", "duration '10' has no unit"),
        ("5d", "duration '5d' has unknown unit 'd'"),
        ("-1s", "duration '-1s' is negative"),
        ("1 s", "'1 s' is not a valid duration"),
        ("s", "'s' is not a valid duration"),
        ("1.2.3s", "'1.2.3s' is not a valid duration"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


units = st.sampled_from([("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)])


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), units), min_size=1))
def test_parse_duration_adds_up_terms(terms: list[tuple[int, tuple[str, float]]]) -> None:
    text = "".join(f"{n}{unit}" for n, (unit, _) in terms)
    expected = sum(n * scale for n, (_, scale) in terms)
    assert parse_duration(text) == pytest.approx(expected)


@given(st.text(max_size=12))
def test_parse_duration_never_fails_any_other_way(text: str) -> None:
    try:
        assert parse_duration(text) >= 0
    except ValueError as exc:
        assert str(exc)


def test_fqdn_resolves_short_names_only() -> None:
    assert fqdn("reviews", "bookinfo") == "reviews.bookinfo.svc.cluster.local"
    assert fqdn("reviews", "bookinfo", "mesh.local") == "reviews.bookinfo.svc.mesh.local"
    assert fqdn("reviews.other", "bookinfo") == "reviews.other"
    assert fqdn("api.example.com", "bookinfo") == "api.example.com"
    assert fqdn("*", "bookinfo") == "*"
    assert fqdn("*.example.com", "bookinfo") == "*.example.com"
    assert fqdn("10.0.0.1", "bookinfo") == "10.0.0.1"
    assert fqdn("::1", "bookinfo") == "::1"


labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
namespaces = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)


@given(labels, namespaces)
def test_fqdn_of_short_name_is_a_valid_host_it_matches(name: str, namespace: str) -> None:
    full = fqdn(name, namespace)
    assert full.startswith(f"{name}.{namespace}.svc.")
    assert host_error(full) is None
    assert fqdn(full, "elsewhere") == full  # resolving twice changes nothing
    assert host_matches(f"*.{namespace}.svc.cluster.local", full)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*", "anything.example.com", True),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("api.example.com", "api.example.com", True),
        ("API.example.com", "api.EXAMPLE.com", True),
        ("api.example.com", "web.example.com", False),
        ("*.example.com", "*.api.example.com", True),
        ("*.api.example.com", "*.example.com", False),
        ("api.example.com", "*.example.com", False),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


@given(st.lists(labels, min_size=1, max_size=4), st.lists(labels, min_size=1, max_size=3))
def test_wildcard_matches_any_deeper_name(prefix: list[str], suffix: list[str]) -> None:
    domain = ".".join(suffix)
    host = ".".join(prefix) + "." + domain
    assert host_matches("*." + domain, host)
    assert host_matches("*", host)
    assert not host_matches("*." + domain, domain)
