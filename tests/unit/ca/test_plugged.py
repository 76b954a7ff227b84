"""Weft under an existing PKI: the signing CA comes from a directory in Istio's layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification

from tests.unit.ca.conftest import REVIEWS
from tests.unit.ca.pki import load, make_ca, make_csr, pem, write_plugged
from weft.ca.authority import CertificateAuthority
from weft.ca.errors import CaConfigError, RotationError


def test_intermediate_signs_and_chain_runs_leaf_intermediate_root(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    inter, inter_key = make_ca("Corp Mesh Intermediate", issuer=(root, root_key))
    plugged = write_plugged(tmp_path / "cacerts", inter, inter_key, [inter, root], [root])

    ca = CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    chain = load(ca.sign_csr(make_csr([REVIEWS.uri]), REVIEWS))

    assert chain[1:] == [inter, root]
    assert load(ca.trust_bundle()) == [root]
    chain[0].verify_directly_issued_by(inter)
    verified = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .build_client_verifier()
        .verify(chain[0], [inter])
    )
    assert verified.subjects == [x509.UniformResourceIdentifier(REVIEWS.uri)]
    assert ca.describe()["mode"] == "plugged"
    # Plugged mode leaves the state dir alone: nothing of a self-signed root is made.
    assert not (tmp_path / "state" / "ca").exists()


def test_chain_file_without_the_root_and_two_intermediates(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    mid, mid_key = make_ca("Corp Region", issuer=(root, root_key))
    inter, inter_key = make_ca("Corp Mesh", issuer=(mid, mid_key))
    other_root, _ = make_ca("Other Root")
    plugged = write_plugged(tmp_path, inter, inter_key, [inter, mid], [other_root, root])

    ca = CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)

    assert load(ca.sign_csr(make_csr(), REVIEWS))[1:] == [inter, mid, root]
    # The root the chain leads to comes first in the bundle; the others stay trusted.
    assert load(ca.trust_bundle()) == [root, other_root]


def test_root_itself_plugged_in(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    plugged = write_plugged(tmp_path, root, root_key, [root], [root])
    ca = CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    assert load(ca.sign_csr(make_csr(), REVIEWS))[1:] == [root]


def test_mismatched_key_names_the_file(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    inter, _ = make_ca("Corp Mesh", issuer=(root, root_key))
    _, stray_key = make_ca("Something Else")
    plugged = write_plugged(tmp_path, inter, stray_key, [inter, root], [root])

    with pytest.raises(CaConfigError) as error:
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    message = str(error.value)
    assert str(plugged / "ca-key.pem") in message
    assert "does not belong to the certificate in ca-cert.pem" in message


def test_signing_cert_that_is_not_a_ca(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    leafish, leafish_key = make_ca("Not A CA", issuer=(root, root_key), ca=False)
    plugged = write_plugged(tmp_path, leafish, leafish_key, [leafish, root], [root])

    with pytest.raises(CaConfigError, match=r"ca-cert\.pem: 'CN=Not A CA' is not a CA"):
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)


def test_chain_that_does_not_lead_to_the_root(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    inter, inter_key = make_ca("Corp Mesh", issuer=(root, root_key))
    unrelated, _ = make_ca("Unrelated Root")
    plugged = write_plugged(tmp_path, inter, inter_key, [inter], [unrelated])

    with pytest.raises(CaConfigError) as error:
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    message = str(error.value)
    assert "cert-chain.pem: the chain from ca-cert.pem does not lead to a root" in message
    assert "CN=Corp Root" in message  # the issuer it was looking for


def test_chain_file_that_starts_elsewhere(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    inter, inter_key = make_ca("Corp Mesh", issuer=(root, root_key))
    plugged = write_plugged(tmp_path, inter, inter_key, [root], [root])
    with pytest.raises(CaConfigError, match=r"first certificate is not the one in ca-cert\.pem"):
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    plugged = write_plugged(tmp_path / "p", root, root_key, [root], [root])
    (plugged / "root-cert.pem").write_text("not a certificate")
    with pytest.raises(CaConfigError, match=r"root-cert\.pem: not PEM certificates"):
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    (plugged / "root-cert.pem").unlink()
    with pytest.raises(CaConfigError, match=r"root-cert\.pem: missing; put the PEM root"):
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    with pytest.raises(CaConfigError, match="directory not found"):
        CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=tmp_path / "nope")


def test_rotation_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    root, root_key = make_ca("Corp Root")
    plugged = write_plugged(tmp_path, root, root_key, [root], [root])
    ca = CertificateAuthority.load_or_create(tmp_path / "state", plugged_dir=plugged)
    with pytest.raises(RotationError, match="replacing the files"):
        ca.begin_root_rotation()
    assert pem(root) == ca.trust_bundle()[0]
