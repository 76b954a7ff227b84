"""`weft apply` as the admin API runs it: what becomes of each object, all or nothing, and the
parsing done off the event loop."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from weft.api import ConfigKey, IstioObject
from weft.config import DirectoryStore, MemoryStore
from weft.controlplane import apply as apply_module
from weft.controlplane.apply import BULK_BYTES, apply_text
from weft.errors import ConfigError


def rule(name: str, *subsets: str) -> str:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}}}\nspec:\n  host: {name}\n"
    )
    if subsets:
        text += "  subsets:\n" + "".join(
            f"  - {{name: {s}, labels: {{version: {s}}}}}\n" for s in subsets
        )
    return text


def results(answer: dict[str, object]) -> list[tuple[str, str]]:
    return [(r["name"], r["result"]) for r in answer["results"]]  # type: ignore[attr-defined, index]


async def test_each_object_says_what_became_of_it() -> None:
    store = MemoryStore()
    answer = await apply_text(store, rule("a") + "---\n" + rule("b"), "rules.yaml")
    assert results(answer) == [("a", "configured"), ("b", "configured")]
    assert answer["count"] == 2
    answer = await apply_text(store, rule("a", "v1") + "---\n" + rule("b"), "rules.yaml")
    assert results(answer) == [("a", "configured"), ("b", "unchanged")]
    answer = await apply_text(store, rule("b") + "---\n" + rule("c"), "x.yaml", delete=True)
    assert results(answer) == [("b", "deleted"), ("c", "unchanged")]
    assert [o.metadata.name for o in store.objects()] == ["a"]


async def test_a_bad_document_stores_nothing() -> None:
    store = MemoryStore()
    with pytest.raises(ConfigError) as info:
        await apply_text(store, rule("a") + "---\n" + rule("b", "v1", "v1"), "rules.yaml")
    assert "rules.yaml" in str(info.value) and "subsets" in str(info.value)
    assert store.objects() == ()


async def test_a_file_the_store_cannot_edit_is_a_config_error(tmp_path: Path) -> None:
    # Answered 400 with the problem, not 500.
    (tmp_path / "a.yaml").write_text(rule("a"))
    store = DirectoryStore(tmp_path)
    store.rescan()
    (tmp_path / "a.yaml").write_text(rule("a") + "---\n" + rule("b", "x", "x"))  # now broken
    with pytest.raises(ConfigError, match="cannot edit this file while it has problems"):
        await apply_text(store, rule("a", "v2"), "rules.yaml")


async def test_the_text_is_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = apply_module.load_yaml

    def load_yaml(text: str, source: str) -> list[IstioObject]:
        threads.append(threading.current_thread())
        return real(text, source)

    monkeypatch.setattr(apply_module, "load_yaml", load_yaml)
    await apply_text(MemoryStore(), rule("a"), "rules.yaml")
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


class GcWatch:
    """Whether the cyclic collector was on while the store applied."""

    def __init__(self, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.enabled: list[bool] = []
        real = store.apply_async

        async def apply_async(objects: Sequence[IstioObject]) -> list[ConfigKey]:
            self.enabled.append(gc.isenabled())
            return await real(objects)

        monkeypatch.setattr(store, "apply_async", apply_async)


async def test_a_bulk_apply_runs_without_cyclic_collections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    watch = GcWatch(store, monkeypatch)
    text = "---\n".join(rule(f"rule-{i:05d}") for i in range(3000))
    assert len(text) >= BULK_BYTES
    frozen = gc.get_freeze_count()
    try:
        await apply_text(store, text, "bulk.yaml")
        assert watch.enabled == [False]
        assert gc.isenabled()
        # What the apply left alive is out of the collector's sight, the new config with it.
        assert gc.get_freeze_count() > frozen + 3000
    finally:
        gc.unfreeze()
    assert len(store.objects()) == 3000


async def test_a_small_apply_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    watch = GcWatch(store, monkeypatch)
    frozen = gc.get_freeze_count()
    await apply_text(store, rule("a"), "rules.yaml")
    assert watch.enabled == [True]
    assert gc.get_freeze_count() == frozen
