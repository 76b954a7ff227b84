"""Golden files: the generated Envoy config for Bookinfo scenarios, as readable YAML.

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/unit/xds` and review
the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from tests.unit.xds.conftest import SnapshotFactory
from weft.snapshot.proxy import Proxy
from weft.xds import types
from weft.xds.generate import generate_all

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, tuple[str, ...]] = {
    "no-rules": (),
    "all-v1": ("destination-rule-all.yaml", "virtual-service-all-v1.yaml"),
    "reviews-80-20": ("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"),
    "reviews-jason-v2": ("destination-rule-all.yaml", "virtual-service-reviews-jason-v2.yaml"),
}


def readable(config: dict[str, Any]) -> dict[str, Any]:
    from google.protobuf import symbol_database

    out: dict[str, Any] = {}
    for type_url in types.PUSH_ORDER:
        items = []
        for name, packed in config[type_url].items.items():
            cls = symbol_database.Default().GetSymbol(type_url.rsplit("/", 1)[1])
            msg = cls()
            packed.Unpack(msg)
            items.append({"name": name, "resource": json.loads(json_format.MessageToJson(msg))})
        out[types.short_name(type_url)] = items
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_config_matches_golden(
    case: str, make_snapshot: SnapshotFactory, proxy: Proxy
) -> None:
    snap = make_snapshot(files=CASES[case])
    text = yaml.safe_dump(readable(generate_all(proxy, snap)), sort_keys=False, width=100)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: create it with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"generated config differs from {path}"
