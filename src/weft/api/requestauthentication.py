"""RequestAuthentication: which JSON Web Tokens a workload accepts, and from where."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import Duration, IstioModel
from weft.api.policytarget import SecurityResource, TargetedPolicySpec


class JWTHeader(IstioModel):
    """A header carrying the token, after an optional prefix such as "Bearer "."""

    name: str
    prefix: str = ""


class ClaimToHeader(IstioModel):
    header: str
    claim: str


class JWTRule(IstioModel):
    issuer: str
    audiences: list[str] = Field(default_factory=list)
    jwks_uri: str | None = None
    jwks: str | None = None  # a JSON Web Key Set, inline
    from_headers: list[JWTHeader] = Field(default_factory=list)
    from_params: list[str] = Field(default_factory=list)
    from_cookies: list[str] = Field(default_factory=list)
    output_payload_to_header: str | None = None
    output_claim_to_headers: list[ClaimToHeader] = Field(default_factory=list)
    forward_original_token: bool = False
    timeout: Duration | None = None


class RequestAuthenticationSpec(TargetedPolicySpec):
    jwt_rules: list[JWTRule] = Field(default_factory=list)


class RequestAuthentication(SecurityResource):
    kind: Literal["RequestAuthentication"] = "RequestAuthentication"
    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)
