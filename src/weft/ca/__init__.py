"""Certificate authority (Istio's Citadel): workload identities as SPIFFE X.509 certificates."""

from weft.ca.authority import CertificateAuthority
from weft.ca.errors import (
    AuthenticationFailed,
    CaConfigError,
    CaError,
    CsrRefused,
    IdentityMismatch,
    RotationError,
    TtlRefused,
)
from weft.ca.identity import SpiffeId
from weft.ca.roots import RotationPhase
from weft.ca.tokens import BootstrapTokens, TokenClaims

__all__ = [
    "AuthenticationFailed",
    "BootstrapTokens",
    "CaConfigError",
    "CaError",
    "CertificateAuthority",
    "CsrRefused",
    "IdentityMismatch",
    "RotationError",
    "RotationPhase",
    "SpiffeId",
    "TokenClaims",
    "TtlRefused",
]
