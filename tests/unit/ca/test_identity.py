from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weft.ca.identity import SpiffeId


def test_formats_as_istio_spiffe_uri() -> None:
    ident = SpiffeId("cluster.local", "default", "bookinfo-reviews")
    assert ident.uri == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    assert str(ident) == ident.uri


def test_parse_round_trips() -> None:
    ident = SpiffeId.parse("spiffe://example.org/ns/prod/sa/web")
    assert ident == SpiffeId("example.org", "prod", "web")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("https://cluster.local/ns/a/sa/b", "not a SPIFFE ID"),
        ("spiffe://cluster.local/ns/a", "not a workload SPIFFE ID"),
        ("spiffe://cluster.local/ns/a/sa/b/extra", "not a workload SPIFFE ID"),
        ("spiffe://cluster.local/sa/b/ns/a", "not a workload SPIFFE ID"),
        ("spiffe:///ns/a/sa/b", "not a workload SPIFFE ID"),
        ("spiffe://Cluster.Local/ns/a/sa/b", "trust domain"),
        ("spiffe://cluster.local/ns//sa/b", "namespace"),
        ("spiffe://cluster.local/ns/a/sa/..", "service account"),
        ("spiffe://cluster.local/ns/a b/sa/b", "namespace"),
    ],
)
def test_parse_refuses_anything_else_saying_why(uri: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SpiffeId.parse(uri)


def test_constructor_refuses_names_that_would_break_the_uri() -> None:
    with pytest.raises(ValueError, match="namespace"):
        SpiffeId("cluster.local", "a/sa/admin", "b")


_segment = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(td=st.from_regex(r"[a-z0-9]+(\.[a-z0-9]+){0,3}", fullmatch=True), ns=_segment, sa=_segment)
def test_any_kubernetes_style_identity_round_trips(td: str, ns: str, sa: str) -> None:
    ident = SpiffeId(td, ns, sa)
    assert SpiffeId.parse(ident.uri) == ident
