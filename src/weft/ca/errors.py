"""Errors of the certificate authority; each message says what was refused and what to do."""

from __future__ import annotations

from weft.errors import WeftError


class CaError(WeftError):
    """Base of every error the certificate authority raises on purpose."""


class CaConfigError(CaError):
    """The CA's files (plugged-in or in the state dir) are missing, unreadable or inconsistent."""


class CsrRefused(CaError):
    """A certificate signing request that will not be signed: malformed, badly signed, weak key."""


class IdentityMismatch(CsrRefused):
    """The CSR asks for a name other than the identity the caller was authenticated as."""

    def __init__(self, requested: str, authenticated: str) -> None:
        self.requested = requested
        self.authenticated = authenticated
        super().__init__(
            f"the CSR asks for {requested} but the caller is authenticated as {authenticated}; "
            "a workload can only get a certificate for its own identity"
        )


class TtlRefused(CaError):
    """A requested certificate lifetime that is not positive or above the CA's maximum."""


class RotationError(CaError):
    """A root rotation step that cannot be taken now (wrong phase, or a plugged-in CA)."""


class AuthenticationFailed(CaError):
    """A caller's bootstrap credential is missing, malformed, forged or expired."""
