"""The table of what each snapshot part is made from and feeds, held to the code that reads it."""

from __future__ import annotations

import dataclasses

import pytest

from weft.snapshot.dependencies import INDEXES, PART_NAMES, PARTS, Piece, parts_of, reads
from weft.snapshot.snapshot import Snapshot
from weft.xds.keys import KEYS, parts_read


def test_every_snapshot_field_is_a_part_or_an_index() -> None:
    names = {f.name for f in dataclasses.fields(Snapshot)} - {"version", "sources"}
    assert names == set(PART_NAMES) | {i.name for i in INDEXES}


@pytest.mark.parametrize("piece", list(Piece))
def test_each_cache_key_holds_exactly_what_the_table_says_its_piece_reads(piece: Piece) -> None:
    # A key field taken from a part the table does not list would not wake proxies when that
    # part changes; a part listed but not in the key would be served stale from the cache.
    assert parts_read(KEYS[piece]) == reads(piece)


def test_indexes_read_parts_only() -> None:
    for index in INDEXES:
        assert set(index.reads) <= set(PART_NAMES), index.name


def test_a_registry_only_change_remakes_the_endpoints_alone() -> None:
    # The endpoint fast path, as the table gives it.
    assert parts_of({"registry.endpoints"}) == {"endpoints"}
    assert parts_of({"ServiceEntry"}) == {"services", "endpoints"}
    assert parts_of({"Gateway"}) == {"gateways"}


def test_each_part_feeds_pieces_or_says_why_not() -> None:
    unread = {p.name for p in PARTS if not p.feeds}
    assert unread == {"gateways"}


def test_the_architecture_document_shows_the_table_as_it_is() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "architecture.md").read_text()
    order = [Piece.VISIBLE, Piece.CLUSTERS, Piece.ENDPOINTS, Piece.ROUTES, Piece.LISTENERS]
    for part in PARTS:
        cells = " | ".join("x" if p in part.feeds else "" for p in order)
        row = f"| `{part.name}` | {', '.join(part.sources)} | {cells} | "
        row += "yes |" if part.by_host else " |"
        assert row.replace("  ", " ") in text.replace("  ", " "), part.name
