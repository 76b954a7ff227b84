"""The certificate authority: signs workload CSRs as SPIFFE identities, keeps the trust bundle."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from weft.ca.certificates import (
    CLOCK_SKEW,
    SigningMaterial,
    build_leaf,
    cert_pem,
    key_pem,
    new_key,
    utcnow,
)
from weft.ca.csr import check_csr
from weft.ca.errors import CaConfigError, RotationError, TtlRefused
from weft.ca.identity import DEFAULT_TRUST_DOMAIN, SpiffeId, check_trust_domain
from weft.ca.plugged import load_plugged
from weft.ca.roots import RotationPhase, SelfSignedRoots

DEFAULT_TTL = 24 * 3600.0
# Istio's default ceiling for a workload certificate (MAX_WORKLOAD_CERT_TTL) is 90 days.
DEFAULT_MAX_TTL = 90 * 24 * 3600.0


def _describe_cert(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


class CertificateAuthority:
    """Istio's Citadel: a self-signed root kept in the state dir, or a plugged-in CA."""

    def __init__(
        self,
        signer: SigningMaterial,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        default_ttl: float = DEFAULT_TTL,
        max_ttl: float = DEFAULT_MAX_TTL,
        roots: SelfSignedRoots | None = None,
        source: Path | None = None,
    ) -> None:
        check_trust_domain(trust_domain)
        if not 0 < default_ttl <= max_ttl:
            raise CaConfigError(
                f"default certificate TTL {default_ttl:g}s must be positive and at most the "
                f"maximum TTL {max_ttl:g}s"
            )
        self._signer = signer
        self._roots = roots
        self.trust_domain = trust_domain
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.source = source

    @classmethod
    def load_or_create(
        cls,
        state_dir: Path,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        plugged_dir: Path | None = None,
        default_ttl: float = DEFAULT_TTL,
        max_ttl: float = DEFAULT_MAX_TTL,
    ) -> CertificateAuthority:
        """Sign with the CA in `plugged_dir`, else with the self-signed root in `<state_dir>/ca/`
        (created on first start, then reused)."""
        if plugged_dir is not None:
            signer = load_plugged(plugged_dir, utcnow())
            return cls(
                signer,
                trust_domain=trust_domain,
                default_ttl=default_ttl,
                max_ttl=max_ttl,
                source=plugged_dir,
            )
        ca_dir = state_dir / "ca"
        roots = SelfSignedRoots.load_or_create(ca_dir, trust_domain, utcnow())
        return cls(
            roots.signer,
            trust_domain=trust_domain,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
            roots=roots,
            source=ca_dir,
        )

    @property
    def mode(self) -> str:
        return "self-signed" if self._roots is not None else "plugged"

    @property
    def rotation_phase(self) -> RotationPhase:
        return self._roots.phase if self._roots is not None else RotationPhase.STABLE

    def check_ttl(self, ttl: float | None) -> float:
        """The lifetime to issue for a request of `ttl` seconds (None: the default)."""
        if ttl is None:
            return self.default_ttl
        if ttl <= 0:
            raise TtlRefused(f"certificate TTL must be positive, not {ttl:g}s")
        if ttl > self.max_ttl:
            raise TtlRefused(
                f"requested certificate TTL {ttl:g}s is above this CA's maximum of "
                f"{self.max_ttl:g}s; ask for {self.max_ttl:g}s or less"
            )
        return ttl

    def sign_csr(
        self, csr_pem: str | bytes, identity: SpiffeId, ttl: float | None = None
    ) -> list[str]:
        """Sign a workload CSR as `identity`; returns PEMs, leaf first and root last.

        The certificate's only name is `identity`, whatever the CSR says; a CSR that asks for
        another name is refused (IdentityMismatch), as is a weak key or a bad signature.
        """
        lifetime = self.check_ttl(ttl)
        public_key = check_csr(csr_pem, identity)
        signer = self._signer
        leaf = build_leaf(public_key, [identity.uri], signer, *self._validity(signer, lifetime))
        return [cert_pem(c) for c in (leaf, *signer.chain_to_root())]

    def issue_serving_cert(
        self, dns_names: list[str], ips: list[str], identity: SpiffeId, ttl: float
    ) -> tuple[list[str], str]:
        """A key and certificate for the control plane's own TLS endpoints: (chain, key PEM)."""
        if ttl <= 0:
            raise TtlRefused(f"certificate TTL must be positive, not {ttl:g}s")
        key = new_key()
        signer = self._signer
        leaf = build_leaf(
            key.public_key(),
            [identity.uri],
            signer,
            *self._validity(signer, ttl),
            dns_names=dns_names,
            ips=ips,
        )
        return [cert_pem(c) for c in (leaf, *signer.chain_to_root())], key_pem(key)

    @staticmethod
    def _validity(signer: SigningMaterial, ttl: float) -> tuple[datetime, datetime]:
        now = utcnow()
        # A leaf cannot outlive its issuers: verifiers would reject it after they expire.
        ceiling = min(c.not_valid_after_utc for c in (signer.cert, *signer.chain_to_root()))
        return now - CLOCK_SKEW, min(now + timedelta(seconds=ttl), ceiling)

    def trust_bundle(self) -> list[str]:
        """Root certificates workloads should trust, PEM, the one currently signing first."""
        return [cert_pem(c) for c in self._signer.bundle]

    def begin_root_rotation(self) -> None:
        """Add a new root to the trust bundle; the current root keeps signing."""
        self._rotating().begin(utcnow())
        self._signer = self._rotating().signer

    def activate_new_root(self) -> None:
        """Sign with the new root from now on; both roots stay in the bundle."""
        self._rotating().activate()
        self._signer = self._rotating().signer

    def finish_root_rotation(self) -> None:
        """Drop the old root from the bundle, once every workload holds a new certificate."""
        self._rotating().finish()
        self._signer = self._rotating().signer

    def _rotating(self) -> SelfSignedRoots:
        if self._roots is None:
            raise RotationError(
                f"this CA is plugged in from {self.source}: rotate it by replacing the files "
                "there (new root in root-cert.pem beside the old one first) and restarting"
            )
        return self._roots

    def describe(self) -> dict[str, Any]:
        """Status for people: mode, trust domain, TTLs, rotation phase, signer and roots."""
        signer = self._signer
        return {
            "mode": self.mode,
            "source": str(self.source) if self.source else None,
            "trust_domain": self.trust_domain,
            "default_ttl_seconds": self.default_ttl,
            "max_ttl_seconds": self.max_ttl,
            "rotation_phase": self.rotation_phase.value,
            "signing_cert": _describe_cert(signer.cert),
            "roots": [
                {**_describe_cert(root), "signing": root == signer.root} for root in signer.bundle
            ],
        }
