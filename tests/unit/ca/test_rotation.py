"""Root rotation without a broken connection: trust the new root, sign with it, drop the old."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.unit.ca.conftest import REVIEWS
from tests.unit.ca.pki import load, make_csr
from weft.ca.authority import CertificateAuthority
from weft.ca.errors import CaConfigError, RotationError
from weft.ca.roots import RotationPhase


def _signing_root(ca: CertificateAuthority) -> x509.Certificate:
    return load(ca.sign_csr(make_csr(), REVIEWS))[-1]


def phase(ca: CertificateAuthority) -> RotationPhase:
    return ca.rotation_phase


def _root_file(state: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates((state / "ca" / "root-cert.pem").read_bytes())


def test_phases_bundle_and_signing_root_survive_restarts(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    (old,) = load(ca.trust_bundle())
    old_leaf = load(ca.sign_csr(make_csr(), REVIEWS))[0]

    ca.begin_root_rotation()
    assert phase(ca) is RotationPhase.NEW_ROOT_TRUSTED
    first, new = load(ca.trust_bundle())
    assert first == old and new != old
    assert _signing_root(ca) == old  # nothing changes for workloads yet

    ca = CertificateAuthority.load_or_create(tmp_path)  # a restart mid-rotation
    assert phase(ca) is RotationPhase.NEW_ROOT_TRUSTED
    assert load(ca.trust_bundle()) == [old, new]
    assert _root_file(tmp_path) == [old, new]
    assert _signing_root(ca) == old

    ca.activate_new_root()
    assert phase(ca) is RotationPhase.NEW_ROOT_ACTIVE
    assert load(ca.trust_bundle()) == [new, old]
    new_leaf = load(ca.sign_csr(make_csr(), REVIEWS))[0]
    new_leaf.verify_directly_issued_by(new)
    old_leaf.verify_directly_issued_by(old)  # both still trusted by the bundle

    ca = CertificateAuthority.load_or_create(tmp_path)
    assert phase(ca) is RotationPhase.NEW_ROOT_ACTIVE
    assert load(ca.trust_bundle()) == [new, old]
    assert _signing_root(ca) == new
    assert x509.load_pem_x509_certificate((tmp_path / "ca" / "ca-cert.pem").read_bytes()) == new

    ca.finish_root_rotation()
    assert phase(ca) is RotationPhase.STABLE
    assert load(ca.trust_bundle()) == [new]

    ca = CertificateAuthority.load_or_create(tmp_path)
    assert phase(ca) is RotationPhase.STABLE
    assert load(ca.trust_bundle()) == [new]
    assert _root_file(tmp_path) == [new]
    assert len(list((tmp_path / "ca" / "roots").iterdir())) == 1  # the old key is gone
    assert ca.describe()["rotation_phase"] == "stable"


def test_steps_out_of_order_are_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    with pytest.raises(RotationError, match="cannot activate the new root in rotation phase"):
        ca.activate_new_root()
    with pytest.raises(RotationError, match="'stable'"):
        ca.finish_root_rotation()
    ca.begin_root_rotation()
    with pytest.raises(RotationError, match="cannot begin"):
        ca.begin_root_rotation()
    with pytest.raises(RotationError, match="cannot finish"):
        ca.finish_root_rotation()
    assert len(ca.trust_bundle()) == 2


def test_describe_marks_the_signing_root(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    ca.begin_root_rotation()
    ca.activate_new_root()
    roots = ca.describe()["roots"]
    assert [r["signing"] for r in roots] == [True, False]
    assert roots[0]["serial"] == ca.describe()["signing_cert"]["serial"]
    assert roots[0]["subject"] != roots[1]["subject"]


def test_a_root_made_before_a_crash_is_forgotten(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    bundle = ca.trust_bundle()
    # What an interrupted begin_root_rotation leaves: a root on disk the state never named.
    orphan = tmp_path / "ca" / "roots" / "0123456789abcdef"
    orphan.mkdir()
    (orphan / "ca-cert.pem").write_text(bundle[0])

    ca = CertificateAuthority.load_or_create(tmp_path)
    assert phase(ca) is RotationPhase.STABLE
    assert ca.trust_bundle() == bundle
    assert not orphan.exists()


def test_damaged_state_is_reported_with_the_file(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    (tmp_path / "ca" / "roots.json").write_text("{")
    with pytest.raises(CaConfigError, match=r"roots\.json: unreadable CA state"):
        CertificateAuthority.load_or_create(tmp_path)
