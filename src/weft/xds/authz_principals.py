"""Who a request is from: an AuthorizationPolicy's `from` sources and source-side `when`
conditions, as Envoy RBAC principals.

Peer identities are the URI SANs of the peer's mesh certificate
(spiffe://<trust domain>/ns/<namespace>/sa/<service account>); end-user identities are the
claims of a JWT that jwt_authn verified and stored in dynamic metadata (see authn.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from weft.api.authorizationpolicy import (
    REQUEST_CLAIMS,
    REQUEST_HEADERS,
    ConditionKey,
    Source,
    split_wildcard,
)
from weft.xds.authn import JWT_AUTHN_FILTER, JWT_PAYLOAD_KEY
from weft.xds.authz_matchers import (
    PRINCIPALS,
    Principal,
    RuleContext,
    cidr,
    header,
    metadata,
    present,
    principal_metadata,
    regex,
    string_matcher,
    string_or_list_value,
    string_value,
    values_condition,
)

SPIFFE = "spiffe://"
# Istio reads "cluster.local" in a principal as "this mesh's trust domain".
DEFAULT_TRUST_DOMAIN = "cluster.local"

PRINCIPAL_ATTRIBUTES = frozenset(
    {
        "source.ip",
        "remote.ip",
        "source.namespace",
        "source.principal",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        REQUEST_HEADERS,
        REQUEST_CLAIMS,
    }
)
_HTTP_ONLY = frozenset(
    {
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        REQUEST_HEADERS,
        REQUEST_CLAIMS,
    }
)


def source_principal(ctx: RuleContext, src: Source) -> Principal | None:
    """All of the source's fields (each: any of its values, none of its not-values)."""
    return PRINCIPALS.all_of(
        [
            _field(ctx, "principals", src.principals, src.not_principals, "source.principal"),
            _field(
                ctx,
                "requestPrincipals",
                src.request_principals,
                src.not_request_principals,
                "request.auth.principal",
            ),
            _field(ctx, "namespaces", src.namespaces, src.not_namespaces, "source.namespace"),
            _field(ctx, "ipBlocks", src.ip_blocks, src.not_ip_blocks, "source.ip"),
            _field(
                ctx,
                "remoteIpBlocks",
                src.remote_ip_blocks,
                src.not_remote_ip_blocks,
                "remote.ip",
            ),
        ]
    )


def condition_principal(
    ctx: RuleContext,
    key: str,
    parsed: ConditionKey,
    values: Sequence[str],
    not_values: Sequence[str],
) -> Principal | None:
    """A `when` condition on a source attribute (see PRINCIPAL_ATTRIBUTES)."""
    return _field(ctx, key, values, not_values, parsed.attribute, parsed.names)


def _field(
    ctx: RuleContext,
    key: str,
    values: Sequence[str],
    not_values: Sequence[str],
    attribute: str,
    names: tuple[str, ...] = (),
) -> Principal | None:
    def build(value: str) -> Principal | None:
        return _principal(ctx, attribute, names, value)

    return values_condition(
        PRINCIPALS, ctx, key, values, not_values, build, http_only=attribute in _HTTP_ONLY
    )


def _principal(
    ctx: RuleContext, attribute: str, names: tuple[str, ...], value: str
) -> Principal | None:
    if attribute == "source.principal":
        return _authenticated(peer_identity(value, ctx.trust_domain))
    if attribute == "source.namespace":
        return _authenticated(regex(namespace_pattern(value)))
    if attribute == "source.ip":
        return Principal(direct_remote_ip=cidr(value))
    if attribute == "remote.ip":
        return Principal(remote_ip=cidr(value))
    if attribute == "request.auth.principal":
        return request_principal(value)
    if attribute == "request.auth.audiences":
        return _claim(("aud",), value)
    if attribute == "request.auth.presenter":
        return _claim(("azp",), value)
    if attribute == REQUEST_CLAIMS:
        return _claim(names, value)
    if attribute == REQUEST_HEADERS:
        return Principal(header=header(names[0], value))
    raise ValueError(f"{attribute} is not a source attribute")


# --- peer identities -----------------------------------------------------------------------


def _authenticated(matcher: object) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=matcher))


def _with_trust_domain(principal: str, trust_domain: str) -> str:
    if principal.startswith(DEFAULT_TRUST_DOMAIN + "/"):
        return trust_domain + principal[len(DEFAULT_TRUST_DOMAIN) :]
    return principal


def peer_identity(value: str, trust_domain: str) -> object:
    """The matcher for an Istio principal ("cluster.local/ns/x/sa/y", with '*' forms) against
    the peer certificate's URI SAN."""
    form, text = split_wildcard(value)
    if form == "any":
        return regex(".+")  # any authenticated peer
    if form == "suffix":
        return string_matcher(value)
    return string_matcher(SPIFFE + _with_trust_domain(text, trust_domain) + value[len(text) :])


def namespace_pattern(value: str) -> str:
    """An RE2 pattern for the SPIFFE identities of a namespace ("*" forms allowed)."""
    form, text = split_wildcard(value)
    name = {
        "any": "[^/]+",
        "exact": re.escape(text),
        "prefix": re.escape(text) + "[^/]*",
        "suffix": "[^/]*" + re.escape(text),
    }[form]
    return f"spiffe://[^/]+/ns/{name}/.*"


# --- end-user identities (a verified JWT) ---------------------------------------------------


def _payload(claims: Sequence[str], value: object) -> Principal:
    return principal_metadata(metadata(JWT_AUTHN_FILTER, [JWT_PAYLOAD_KEY, *claims], value))


def _claim(claims: Sequence[str], value: str) -> Principal:
    if value == "*":
        return _payload(claims, present())
    return _payload(claims, string_or_list_value(string_matcher(value)))


def _iss_sub(iss: object, sub: object) -> Principal | None:
    return PRINCIPALS.all_of([_payload(["iss"], iss), _payload(["sub"], sub)])


def _exact(text: str) -> object:
    return string_value(string_matcher(text))


def request_principal(value: str) -> Principal | None:
    """Istio's request principal is "<iss>/<sub>", and both may contain '/'. The payload
    holds them apart, so each place the '/' could split the value is one alternative."""
    form, text = split_wildcard(value)
    # An issuer never ends inside "://", so those slashes are no place to split.
    slashes = [
        i
        for i, char in enumerate(text)
        if char == "/" and i > 0 and text[i - 1] != ":" and not text[:i].endswith(":/")
    ]
    if form == "any":
        return _payload(["iss"], present())
    if form == "exact":
        return PRINCIPALS.any_of(_iss_sub(_exact(text[:i]), _exact(text[i + 1 :])) for i in slashes)
    if form == "prefix":
        options = [_payload(["iss"], string_value(string_matcher(value)))]
        for i in slashes:
            rest = text[i + 1 :]
            sub = string_value(string_matcher(rest + "*")) if rest else present()
            options.append(_iss_sub(_exact(text[:i]), sub))
        return PRINCIPALS.any_of(options)
    options = [_payload(["sub"], string_value(string_matcher(value)))]
    for i in [0, *slashes] if text.startswith("/") else slashes:
        head = text[:i]
        iss = string_value(string_matcher("*" + head)) if head else present()
        options.append(_iss_sub(iss, _exact(text[i + 1 :])))
    return PRINCIPALS.any_of(options)
