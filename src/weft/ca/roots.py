"""Self-signed roots kept in `<state_dir>/ca/`, and rotating from one root to the next.

    roots.json                  which roots exist, which one signs, the rotation phase
    roots/<id>/ca-cert.pem      each root's certificate and key (ca-key.pem, mode 0600)
    root-cert.pem ca-cert.pem   Istio's plugged-CA layout, rewritten from roots.json after
    ca-key.pem cert-chain.pem   every change, for people and tools to read

roots.json is replaced in one step, so a crash at any point leaves the old state or the new.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509

from weft.ca.certificates import SigningKey, SigningMaterial, build_root, cert_pem, key_pem
from weft.ca.errors import CaConfigError, RotationError
from weft.ca.pemfiles import (
    CA_CERT,
    CA_KEY,
    CERT_CHAIN,
    ROOT_CERT,
    check_key_matches,
    private_dir,
    read_certs,
    read_key,
    write_atomic,
)

STATE_FILE = "roots.json"


class RotationPhase(StrEnum):
    STABLE = "stable"  # one root, trusted and signing
    NEW_ROOT_TRUSTED = "new-root-trusted"  # both trusted; the old root still signs
    NEW_ROOT_ACTIVE = "new-root-active"  # both trusted; the new root signs


@dataclass(frozen=True)
class Root:
    id: str
    cert: x509.Certificate
    key: SigningKey


class SelfSignedRoots:
    """The roots of a self-signed CA and its rotation phase, persisted after every step."""

    def __init__(self, ca_dir: Path, trust_domain: str) -> None:
        self.ca_dir = ca_dir
        self.trust_domain = trust_domain
        self.phase = RotationPhase.STABLE
        self._signing: Root | None = None
        self._other: Root | None = None  # the second root while rotating

    @classmethod
    def load_or_create(cls, ca_dir: Path, trust_domain: str, now: datetime) -> SelfSignedRoots:
        roots = cls(private_dir(ca_dir), trust_domain)
        state = ca_dir / STATE_FILE
        if state.exists():
            roots._load(state)
        elif (ca_dir / CA_CERT).exists():
            raise CaConfigError(
                f"{ca_dir / CA_CERT}: found without {STATE_FILE}; to sign with your own CA pass "
                f"its directory as the plugged-in CA, or remove {ca_dir} to create a new root"
            )
        else:
            roots._signing = roots._new_root(now)
            roots._save()
        roots._clean()
        return roots

    @property
    def signer(self) -> SigningMaterial:
        signing = self._require(self._signing)
        bundle = [signing.cert] + ([self._other.cert] if self._other else [])
        return SigningMaterial(signing.cert, signing.key, (), signing.cert, tuple(bundle))

    def begin(self, now: datetime) -> None:
        """Trust a new root beside the current one; the current one keeps signing."""
        self._expect(RotationPhase.STABLE, "begin a root rotation")
        self._other = self._new_root(now)
        self.phase = RotationPhase.NEW_ROOT_TRUSTED
        self._save()

    def activate(self) -> None:
        """Sign with the new root; the old one stays trusted for certificates it signed."""
        self._expect(RotationPhase.NEW_ROOT_TRUSTED, "activate the new root")
        self._signing, self._other = self._other, self._signing
        self.phase = RotationPhase.NEW_ROOT_ACTIVE
        self._save()

    def finish(self) -> None:
        """Stop trusting the old root; do this once every workload has a new certificate."""
        self._expect(RotationPhase.NEW_ROOT_ACTIVE, "finish the root rotation")
        self._other = None
        self.phase = RotationPhase.STABLE
        self._save()
        self._clean()

    def _expect(self, phase: RotationPhase, step: str) -> None:
        if self.phase is not phase:
            order = "begin_root_rotation, activate_new_root, finish_root_rotation"
            raise RotationError(
                f"cannot {step} in rotation phase {self.phase.value!r}; the steps go {order}"
            )

    @staticmethod
    def _require(root: Root | None) -> Root:
        if root is None:
            raise AssertionError("roots used before they were loaded")
        return root

    def _new_root(self, now: datetime) -> Root:
        cert, key = build_root(self.trust_domain, now)
        # Named by key id, which the root's common name starts with too.
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        root = Root(ski.digest.hex()[:16], cert, key)
        directory = private_dir(self.ca_dir / "roots" / root.id)
        write_atomic(directory / CA_KEY, key_pem(key), mode=0o600)
        write_atomic(directory / CA_CERT, cert_pem(cert))
        return root

    def _save(self) -> None:
        signing = self._require(self._signing)
        state = {
            "phase": self.phase.value,
            "signing": signing.id,
            "other": self._other.id if self._other else None,
        }
        write_atomic(self.ca_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
        # The readable layout, written only after the state it shows is safely stored.
        bundle = "".join(cert_pem(c) for c in self.signer.bundle)
        write_atomic(self.ca_dir / CA_KEY, key_pem(signing.key), mode=0o600)
        write_atomic(self.ca_dir / CA_CERT, cert_pem(signing.cert))
        write_atomic(self.ca_dir / CERT_CHAIN, cert_pem(signing.cert))
        write_atomic(self.ca_dir / ROOT_CERT, bundle)

    def _load(self, state_path: Path) -> None:
        fix = f"restore {self.ca_dir} from a backup, or remove it to start over with a new root"
        try:
            state: Any = json.loads(state_path.read_text())
            self.phase = RotationPhase(state["phase"])
            signing_id, other_id = state["signing"], state["other"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CaConfigError(f"{state_path}: unreadable CA state ({e}); {fix}") from None
        if (other_id is None) != (self.phase is RotationPhase.STABLE):
            raise CaConfigError(f"{state_path}: phase and roots disagree; {fix}")
        self._signing = self._read_root(str(signing_id), fix)
        self._other = self._read_root(str(other_id), fix) if other_id else None
        self._save()  # bring the readable layout up to date after a crash mid-write

    def _read_root(self, root_id: str, fix: str) -> Root:
        directory = self.ca_dir / "roots" / root_id
        certs = read_certs(directory / CA_CERT, fix)
        key = read_key(directory / CA_KEY, fix)
        check_key_matches(certs[0], key, directory / CA_CERT, directory / CA_KEY)
        return Root(root_id, certs[0], key)

    def _clean(self) -> None:
        """Remove roots no longer in the state: dropped ones, or one made before a crash."""
        keep = {r.id for r in (self._signing, self._other) if r is not None}
        with contextlib.suppress(FileNotFoundError):
            for directory in (self.ca_dir / "roots").iterdir():
                if directory.name not in keep:
                    shutil.rmtree(directory, ignore_errors=True)
