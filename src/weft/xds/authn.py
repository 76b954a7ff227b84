"""RequestAuthentication -> Envoy's jwt_authn HTTP filter.

Istio's semantics: a request with an invalid token is refused (401); a request with no token
passes, so requiring a token is an AuthorizationPolicy's job (`requestPrincipals: ["*"]`).

Every provider stores the verified token's payload in dynamic metadata under
`envoy.filters.http.jwt_authn` / JWT_PAYLOAD_KEY; the RBAC rules in authz_principals.py read
`iss`, `sub`, `aud`, `azp` and other claims from there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import empty_pb2

from weft.api import RequestAuthentication
from weft.api.requestauthentication import JWTRule
from weft.xds.protos import pack

logger = logging.getLogger(__name__)

JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD_KEY = "jwt_payload"
"""The dynamic-metadata key (in the jwt_authn filter's namespace) of a verified payload."""

DEFAULT_HEADER = jwt.JwtHeader(name="Authorization", value_prefix="Bearer ")
DEFAULT_PARAM = "access_token"

# A well-formed key set whose private key does not exist: tokens for an issuer whose keys
# have not been fetched yet fail verification (401) rather than pass unchecked.
UNVERIFIABLE_JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "weft-keys-not-fetched",
                "x": "BnmZBBAKwz-TLZIwE92yxTq_N-urMVKp10MI2GCxjiY",
                "y": "PVR7p7njbYTwun79aoR0J1uj9xz6xSuf40Vm_gRpeTI",
            }
        ]
    },
    separators=(",", ":"),
)


def jwks_uris(request_authentications: Sequence[RequestAuthentication]) -> set[str]:
    """The key-set URLs the control plane must fetch for these policies (inline keys excluded)."""
    return {
        rule.jwks_uri
        for ra in request_authentications
        for rule in ra.spec.jwt_rules
        if rule.jwks_uri and rule.jwks is None
    }


def provider_name(ra: RequestAuthentication, index: int) -> str:
    return f"{ra.metadata.namespace}/{ra.metadata.name}/jwtRules[{index}]"


def jwt_authn_filter(
    request_authentications: Sequence[RequestAuthentication], jwks: Mapping[str, str]
) -> hcm.HttpFilter | None:
    """One provider per jwtRule; `jwks` maps each fetched jwksUri to its document.

    None when no rule applies: without the filter every request passes, as with no policy.
    """
    providers: dict[str, jwt.JwtProvider] = {}
    for ra in request_authentications:
        for i, rule in enumerate(ra.spec.jwt_rules):
            providers[provider_name(ra, i)] = jwt_provider(rule, jwks, provider_name(ra, i))
    if not providers:
        return None
    requirement = jwt.JwtRequirement(
        requires_any=jwt.JwtRequirementOrList(
            requirements=[
                *(jwt.JwtRequirement(provider_name=name) for name in providers),
                jwt.JwtRequirement(allow_missing=empty_pb2.Empty()),
            ]
        )
    )
    config = jwt.JwtAuthentication(
        providers=providers,
        rules=[jwt.RequirementRule(match=rc.RouteMatch(prefix="/"), requires=requirement)],
    )
    return hcm.HttpFilter(name=JWT_AUTHN_FILTER, typed_config=pack(config))


def jwt_provider(rule: JWTRule, jwks: Mapping[str, str], name: str = "") -> jwt.JwtProvider:
    provider = jwt.JwtProvider(
        issuer=rule.issuer,
        audiences=rule.audiences,
        local_jwks=base_pb2.DataSource(inline_string=_key_set(rule, jwks, name)),
        forward=rule.forward_original_token,
        payload_in_metadata=JWT_PAYLOAD_KEY,
        claim_to_headers=[
            jwt.JwtClaimToHeader(header_name=out.header, claim_name=out.claim)
            for out in rule.output_claim_to_headers
        ],
    )
    if rule.from_headers or rule.from_params or rule.from_cookies:
        provider.from_headers.extend(
            jwt.JwtHeader(name=h.name, value_prefix=h.prefix) for h in rule.from_headers
        )
        provider.from_params.extend(rule.from_params)
        provider.from_cookies.extend(rule.from_cookies)
    else:
        provider.from_headers.append(DEFAULT_HEADER)
        provider.from_params.append(DEFAULT_PARAM)
    if rule.output_payload_to_header:
        provider.forward_payload_header = rule.output_payload_to_header
    return provider


def _key_set(rule: JWTRule, jwks: Mapping[str, str], name: str) -> str:
    if rule.jwks is not None:
        return rule.jwks
    if rule.jwks_uri and rule.jwks_uri in jwks:
        return jwks[rule.jwks_uri]
    # Not fetched yet (or no jwksUri: OpenID discovery is not done), so no token verifies.
    logger.warning(
        "%s: keys for issuer %s are not available (%s); its tokens are refused until they are",
        name or "jwtRule",
        rule.issuer,
        f"{rule.jwks_uri} not fetched" if rule.jwks_uri else "no jwks or jwksUri",
    )
    return UNVERIFIABLE_JWKS
