from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from weft.api import load_yaml
from weft.errors import ConfigError

TESTDATA = Path(__file__).parent / "testdata"


@pytest.fixture
def bookinfo_path() -> Path:
    return TESTDATA / "bookinfo.yaml"


@pytest.fixture
def bookinfo_text(bookinfo_path: Path) -> str:
    return bookinfo_path.read_text()


@pytest.fixture
def errors_of() -> Callable[[str], list[str]]:
    """The problem lines a user would see for a YAML text loaded from 'mesh.yaml'."""

    def load(text: str) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load_yaml(text, "mesh.yaml")
        return [str(p) for p in info.value.problems]

    return load
