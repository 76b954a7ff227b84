"""A request principal "<iss>/<sub>" (with Istio's '*' forms) becomes matchers on the JWT
payload's separate iss and sub claims. Both may contain '/', so the translation must agree
with matching the joined string for every issuer and subject."""

from __future__ import annotations

from envoy.config.rbac.v3 import rbac_pb2
from envoy.type.matcher.v3 import string_pb2
from hypothesis import assume, given
from hypothesis import strategies as st

from weft.xds.authz_principals import request_principal

TEXT = st.text(alphabet="ab/:.", max_size=8)


def string_matches(matcher: string_pb2.StringMatcher, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "exact":
        return value == matcher.exact
    if kind == "prefix":
        return value.startswith(matcher.prefix)
    if kind == "suffix":
        return value.endswith(matcher.suffix)
    raise AssertionError(f"unexpected matcher {kind}")


def evaluate(principal: rbac_pb2.Principal | None, payload: dict[str, str]) -> bool:
    """Envoy's meaning of the matchers request_principal produces."""
    if principal is None:
        return False
    kind = principal.WhichOneof("identifier")
    if kind == "and_ids":
        return all(evaluate(p, payload) for p in principal.and_ids.ids)
    if kind == "or_ids":
        return any(evaluate(p, payload) for p in principal.or_ids.ids)
    assert kind == "sourced_metadata", kind
    matcher = principal.sourced_metadata.metadata_matcher
    claim = matcher.path[-1].key
    if claim not in payload:
        return False
    if matcher.value.present_match:
        return True
    return string_matches(matcher.value.string_match, payload[claim])


def istio_matches(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, str]:
    """(pattern, iss, sub), the token often built around the pattern so that it matches."""
    text = draw(TEXT.filter(bool))
    pattern = draw(st.sampled_from([text, text + "*", "*" + text, "*"]))
    joined = draw(TEXT) + text + draw(TEXT) if draw(st.booleans()) else draw(TEXT)
    cuts = [i for i, char in enumerate(joined) if char == "/" and i > 0]
    assume(cuts)
    cut = draw(st.sampled_from(cuts))
    return pattern, joined[:cut], joined[cut + 1 :]


@given(cases())
def test_agrees_with_matching_the_joined_principal(case: tuple[str, str, str]) -> None:
    pattern, iss, sub = case
    # Issuers never end inside a URL's "://"; the translation relies on that.
    assume(not iss.endswith(":") and not iss.endswith(":/"))
    expected = istio_matches(pattern, f"{iss}/{sub}")
    assert evaluate(request_principal(pattern), {"iss": iss, "sub": sub}) == expected


def test_no_token_matches_no_request_principal() -> None:
    for pattern in ("*", "https://idp/alice", "https://idp/*", "*/alice"):
        assert not evaluate(request_principal(pattern), {})
