from __future__ import annotations

from collections.abc import Callable

import pytest

from weft.api import ConfigKey, DestinationRule
from weft.config import ConfigStore, MemoryStore
from weft.errors import ConfigError

MakeRule = Callable[..., DestinationRule]


def test_memory_store_is_a_config_store() -> None:
    store: ConfigStore = MemoryStore()
    assert store.objects() == ()


async def test_apply_and_delete_report_what_changed(make_rule: MakeRule) -> None:
    store = MemoryStore([make_rule("b")])
    calls: list[tuple[str, ...]] = []
    store.subscribe(lambda: calls.append(tuple(o.metadata.name for o in store.objects())))
    await store.start()

    assert store.apply([make_rule("a"), make_rule("b")]) == [
        ConfigKey("DestinationRule", "default", "a")
    ]
    assert calls == [("a", "b")]  # sorted by key, b unchanged

    assert store.apply([make_rule("a")]) == []
    assert len(calls) == 1  # nothing changed, nobody called

    assert store.apply([make_rule("a", "default", "v1")]) == [
        ConfigKey("DestinationRule", "default", "a")
    ]
    (a, _) = store.objects()
    assert isinstance(a, DestinationRule) and a.spec.subsets[0].name == "v1"

    gone = ConfigKey("DestinationRule", "default", "b")
    missing = ConfigKey("DestinationRule", "default", "nope")
    assert store.delete([gone, missing, gone]) == [gone]
    assert store.delete([missing]) == []
    assert [o.metadata.name for o in store.objects()] == ["a"]
    assert len(calls) == 3
    assert store.problems() == ()
    await store.stop()


def test_apply_refuses_invalid_objects_and_applies_nothing(make_rule: MakeRule) -> None:
    store = MemoryStore()
    bad = make_rule("bad", "default", "v1", "v1")
    with pytest.raises(ConfigError) as info:
        store.apply([make_rule("good"), bad])
    assert str(info.value) == (
        "apply: DestinationRule default/bad: spec.subsets[1].name: subset name 'v1' is already "
        "used by spec.subsets[0] (give each subset a unique name)"
    )
    assert store.objects() == ()


def test_apply_refuses_the_same_key_twice(make_rule: MakeRule) -> None:
    with pytest.raises(ConfigError, match="appears twice in one apply"):
        MemoryStore().apply([make_rule("a"), make_rule("a", "default", "v1")])


def test_failing_subscriber_does_not_stop_others(make_rule: MakeRule) -> None:
    store = MemoryStore()
    seen: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.subscribe(lambda: seen.append(len(store.objects())))
    store.apply([make_rule("a")])
    assert seen == [1]


def test_applying_equal_objects_keeps_the_stored_instances(make_rule: MakeRule) -> None:
    a, b = make_rule("a", "default", "v1"), make_rule("b", "default", "v1")
    store = MemoryStore([a, b])
    new_b = make_rule("b", "default", "v2")
    assert store.apply([make_rule("a", "default", "v1"), new_b]) == [
        ConfigKey("DestinationRule", "default", "b")
    ]
    stored_a, stored_b = store.objects()
    assert stored_a is a
    assert stored_b is new_b
