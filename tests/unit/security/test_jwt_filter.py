"""RequestAuthentication -> jwt_authn: one provider per rule, invalid tokens refused, missing
tokens let through for AuthorizationPolicy to judge."""

from __future__ import annotations

import json
import logging

import pytest
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt

from tests.unit.security.conftest import policy, request_authentications
from weft.api.validation_jwt import jwks_error
from weft.xds.authn import (
    JWT_AUTHN_FILTER,
    JWT_PAYLOAD_KEY,
    UNVERIFIABLE_JWKS,
    jwks_uris,
    jwt_authn_filter,
)

JWKS = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]})
FETCHED = json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]})


def ra(name: str, rules: str, namespace: str = "foo") -> str:
    return policy(name, f"{{jwtRules: {rules}}}", namespace=namespace, kind="RequestAuthentication")


TEXT = ra(
    "jwt",
    f"""[{{issuer: https://a.example.com, audiences: [app], jwks: '{JWKS}',
          outputPayloadToHeader: x-jwt-payload,
          outputClaimToHeaders: [{{header: x-sub, claim: sub}}]}},
         {{issuer: https://b.example.com, jwksUri: 'https://b.example.com/keys',
          fromHeaders: [{{name: x-token}}], forwardOriginalToken: true}}]""",
) + ra("other", "[{issuer: https://c.example.com, jwksUri: 'https://c.example.com/keys'}]")


def config(text: str = TEXT, fetched: dict[str, str] | None = None) -> jwt.JwtAuthentication:
    f = jwt_authn_filter(request_authentications(text), fetched or {})
    assert f is not None and f.name == JWT_AUTHN_FILTER
    out = jwt.JwtAuthentication()
    assert f.typed_config.Unpack(out)
    return out


def test_no_rules_no_filter() -> None:
    assert jwt_authn_filter([], {}) is None
    assert jwt_authn_filter(request_authentications(ra("empty", "[]")), {}) is None


def test_one_provider_per_rule() -> None:
    providers = config(fetched={"https://b.example.com/keys": FETCHED}).providers
    assert sorted(providers) == [
        "foo/jwt/jwtRules[0]",
        "foo/jwt/jwtRules[1]",
        "foo/other/jwtRules[0]",
    ]
    a = providers["foo/jwt/jwtRules[0]"]
    assert a.issuer == "https://a.example.com"
    assert list(a.audiences) == ["app"]
    assert a.local_jwks.inline_string == JWKS
    assert a.payload_in_metadata == JWT_PAYLOAD_KEY
    assert a.forward_payload_header == "x-jwt-payload"
    assert [(c.header_name, c.claim_name) for c in a.claim_to_headers] == [("x-sub", "sub")]
    assert not a.forward
    b = providers["foo/jwt/jwtRules[1]"]
    assert b.local_jwks.inline_string == FETCHED
    assert b.forward


def test_token_locations_default_to_istios() -> None:
    providers = config().providers
    a = providers["foo/jwt/jwtRules[0]"]
    assert [(h.name, h.value_prefix) for h in a.from_headers] == [("Authorization", "Bearer ")]
    assert list(a.from_params) == ["access_token"]
    # Naming any location replaces the defaults.
    b = providers["foo/jwt/jwtRules[1]"]
    assert [(h.name, h.value_prefix) for h in b.from_headers] == [("x-token", "")]
    assert list(b.from_params) == []


def test_unfetched_keys_verify_no_token(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        providers = config().providers
    assert providers["foo/other/jwtRules[0]"].local_jwks.inline_string == UNVERIFIABLE_JWKS
    assert "https://c.example.com/keys not fetched" in caplog.text
    assert jwks_error(UNVERIFIABLE_JWKS) is None  # well-formed, so Envoy loads it


def test_invalid_token_refused_missing_token_allowed() -> None:
    (rule,) = config().rules
    assert rule.match.prefix == "/"
    requirements = rule.requires.requires_any.requirements
    assert [r.provider_name for r in requirements[:-1]] == [
        "foo/jwt/jwtRules[0]",
        "foo/jwt/jwtRules[1]",
        "foo/other/jwtRules[0]",
    ]
    assert requirements[-1].HasField("allow_missing")


def test_jwks_uris_lists_what_to_fetch() -> None:
    assert jwks_uris(request_authentications(TEXT)) == {
        "https://b.example.com/keys",
        "https://c.example.com/keys",
    }
