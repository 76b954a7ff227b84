"""Rules for one RequestAuthentication jwtRule: issuer, key source, token locations, outputs."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from weft.api.requestauthentication import JWTRule
from weft.api.validation_common import Problems, problem

# RFC 9110 token characters: what an HTTP header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_HINT = "use a header name of letters, digits and '-', such as 'x-jwt-payload'"

# The members each key type needs to be usable for verification (RFC 7518).
_KEY_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "oct": ("k",), "OKP": ("crv", "x")}


def jwks_error(text: str) -> str | None:
    """Why `text` is not a usable JSON Web Key Set, or None when it is."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"jwks is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        return "jwks is not a JSON Web Key Set: it needs a 'keys' list"
    keys = data["keys"]
    if not keys:
        return "jwks has no keys"
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            return f"jwks keys[{i}] is not an object"
        kty = key.get("kty")
        members = _KEY_MEMBERS.get(kty) if isinstance(kty, str) else None
        if members is None:
            return f"jwks keys[{i}] has key type {kty!r}; expected one of RSA, EC, oct, OKP"
        missing = [m for m in members if not isinstance(key.get(m), str) or not key[m]]
        if missing:
            return f"jwks keys[{i}] ({kty}) lacks {', '.join(missing)}"
    return None


def header_name_error(name: str) -> str | None:
    if not name:
        return "header name is empty"
    if not _HEADER_NAME.match(name):
        return f"{name!r} is not a valid HTTP header name"
    return None


def check_jwt_rule(field: str, rule: JWTRule) -> Problems:
    if not rule.issuer:
        yield problem(
            f"{field}.issuer", "issuer is empty", "set it to the token's 'iss' claim value"
        )
    if rule.jwks is not None and rule.jwks_uri is not None:
        yield problem(
            field,
            "sets both jwks and jwksUri",
            "keep one: inline keys in 'jwks', or where to fetch them in 'jwksUri'",
        )
    if rule.jwks_uri is not None:
        url = urlsplit(rule.jwks_uri)
        if url.scheme not in ("http", "https") or not url.hostname:
            yield problem(
                f"{field}.jwksUri",
                f"{rule.jwks_uri!r} is not an http(s) URL",
                "use a URL such as 'https://example.com/.well-known/jwks.json'",
            )
    if rule.jwks is not None:
        error = jwks_error(rule.jwks)
        if error is not None:
            yield problem(
                f"{field}.jwks",
                error,
                'paste the issuer\'s key set, e.g. {"keys": [{"kty": "RSA", "n": ..., "e": ...}]}',
            )
    for i, header in enumerate(rule.from_headers):
        error = header_name_error(header.name)
        if error is not None:
            yield problem(f"{field}.fromHeaders[{i}].name", error, HEADER_HINT)
    for name, values in (("fromParams", rule.from_params), ("fromCookies", rule.from_cookies)):
        for i, value in enumerate(values):
            if not value:
                yield problem(f"{field}.{name}[{i}]", "is an empty string", "name it, or drop it")
    if rule.output_payload_to_header is not None:
        error = header_name_error(rule.output_payload_to_header)
        if error is not None:
            yield problem(f"{field}.outputPayloadToHeader", error, HEADER_HINT)
    for i, output in enumerate(rule.output_claim_to_headers):
        error = header_name_error(output.header)
        if error is not None:
            yield problem(f"{field}.outputClaimToHeaders[{i}].header", error, HEADER_HINT)
        if not output.claim:
            yield problem(
                f"{field}.outputClaimToHeaders[{i}].claim",
                "claim is empty",
                "name the claim to copy, such as 'sub' or 'groups'",
            )
