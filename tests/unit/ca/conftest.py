from __future__ import annotations

from pathlib import Path

import pytest

from weft.ca.authority import CertificateAuthority
from weft.ca.identity import SpiffeId

REVIEWS = SpiffeId("cluster.local", "default", "bookinfo-reviews")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "state")
