"""Big applies and deletes: each file is read, parsed and written once, whatever the batch size,
and the event loop goes on running while a change is written."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from weft.api import ConfigKey, DestinationRule, IstioObject, dump_yaml, load_yaml
from weft.config import DirectoryStore
from weft.config import files as config_files
from weft.errors import ConfigError, ConfigProblem

MakeRule = Callable[..., DestinationRule]


def key(name: str) -> ConfigKey:
    return ConfigKey("DestinationRule", "default", name)


def rule_text(rule: DestinationRule) -> str:
    """The rule in flow style, as a person might write it (not as Weft writes files)."""
    name = rule.metadata.name
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}}}\n"
        f"spec: {{host: {name}, subsets: [{{name: v1, labels: {{version: v1}}}}]}}\n"
    )


def rules(make_rule: MakeRule, n: int, *subsets: str) -> list[DestinationRule]:
    return [make_rule(f"r{i:04d}", "default", *subsets) for i in range(n)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DirectoryStore]:
    s = DirectoryStore(tmp_path, poll_interval=0.01)
    yield s
    await s.stop()


class Parses:
    """Counts, per file, how often the YAML loader is asked to parse it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_source: dict[str, int] = {}
        real = config_files.load_yaml

        def counting(text: str, source: str) -> list[IstioObject]:
            self.by_source[source] = self.by_source.get(source, 0) + 1
            return real(text, source)

        monkeypatch.setattr("weft.config.files.load_yaml", counting)
        monkeypatch.setattr("weft.config.scan.load_yaml", counting)


async def test_deleting_many_objects_of_one_file_parses_it_once(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "all.yaml"
    objects = rules(make_rule, 300)
    path.write_text("# kept\n" + dump_yaml(objects))
    await store.start()
    await store.stop()  # only this test's calls read the directory from here on
    parses = Parses(monkeypatch)

    doomed = [o.key for o in objects[:-1]]
    assert store.delete(doomed) == doomed
    # One parse to check the edited text; the scan after it does not read the file back.
    assert parses.by_source == {str(path): 1}
    assert [o.metadata.name for o in store.objects()] == ["r0299"]
    assert load_yaml(path.read_text(), "again") == [objects[-1]]


async def test_applying_many_changes_to_one_file_edits_it_once(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(dump_yaml(rules(make_rule, 300)))
    await store.start()
    await store.stop()
    parses = Parses(monkeypatch)

    changed = rules(make_rule, 300, "v2")
    assert store.apply(changed) == [o.key for o in changed]
    assert parses.by_source == {str(path): 1}
    assert store.objects() == tuple(changed)
    assert load_yaml(path.read_text(), "again") == changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.yaml"]


async def test_new_files_are_not_read_back(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.start()
    await store.stop()
    parses = Parses(monkeypatch)
    new = rules(make_rule, 200)
    assert store.apply(new) == [o.key for o in new]
    assert parses.by_source == {}
    assert store.objects() == tuple(new)
    assert len(list(tmp_path.glob("destinationrule-default-r*.yaml"))) == 200
    # What is served is what a fresh store reads from those files.
    fresh = DirectoryStore(tmp_path)
    fresh.rescan()
    assert fresh.objects() == store.objects()


async def test_deleting_every_object_of_many_files_parses_none(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    for obj in rules(make_rule, 200):
        (tmp_path / f"{obj.metadata.name}.yaml").write_text(dump_yaml([obj]))
    await store.start()
    await store.stop()
    parses = Parses(monkeypatch)
    assert len(store.delete([key(f"r{i:04d}") for i in range(200)])) == 200
    assert parses.by_source == {}
    assert store.objects() == ()
    assert list(tmp_path.iterdir()) == []


async def test_several_documents_of_a_file_change_in_one_edit(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    a, b, c, d, e = (make_rule(n, "default", "v1") for n in "abcde")
    path = tmp_path / "all.yaml"
    path.write_text(dump_yaml([a, b, c, d]) + "---\n# e, as written\n" + rule_text(e))
    await store.start()
    store.delete([key("a"), key("c")])
    assert path.read_text() == dump_yaml([b, d]) + "---\n# e, as written\n" + rule_text(e)
    new_b, new_d = make_rule("b", "default", "v2"), make_rule("d", "default", "v3")
    store.apply([new_d, new_b])
    assert path.read_text() == dump_yaml([new_b, new_d]) + "---\n# e, as written\n" + rule_text(e)
    assert store.objects() == (new_b, new_d, e)


async def test_several_items_of_list_files_change_in_one_edit(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    import json

    from weft.api import to_dict

    items = [to_dict(make_rule(n)) for n in ("j1", "j2", "j3")]
    (tmp_path / "list.json").write_text(json.dumps({"kind": "List", "items": items}))
    (tmp_path / "array.json").write_text(json.dumps([to_dict(make_rule(n)) for n in ("k1", "k2")]))
    await store.start()
    store.delete([key("j1"), key("j3"), key("k2")])
    store.apply([make_rule("j2", "default", "v1"), make_rule("k1", "default", "v1")])
    data = json.loads((tmp_path / "list.json").read_text())
    assert [i["metadata"]["name"] for i in data["items"]] == ["j2"]
    assert [o.metadata.name for o in store.objects()] == ["j2", "k1"]
    assert all(o.spec.subsets for o in store.objects() if isinstance(o, DestinationRule))


async def test_new_objects_whose_file_names_collide_get_files_of_their_own(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    await store.start()
    one, two = make_rule("c", "a-b"), make_rule("b-c", "a")  # both destinationrule-a-b-c
    store.apply([one, two])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "destinationrule-a-b-c-2.yaml",
        "destinationrule-a-b-c.yaml",
    ]
    assert [o.key for o in store.objects()] == [two.key, one.key]


async def test_a_failed_write_leaves_what_is_on_disk_served(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text(dump_yaml([make_rule("a")]))
    await store.start()
    real = config_files.write_atomic

    def full_disk_for_b(path: Path, data: bytes) -> os.stat_result:
        if "-b" in path.name:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr("weft.config.files.write_atomic", full_disk_for_b)
    new_a = make_rule("a", "default", "v2")
    with pytest.raises(OSError, match="No space left"):
        store.apply([new_a, make_rule("b"), make_rule("c")])
    # What was written is served, the rest is not.
    assert [o.metadata.name for o in store.objects()] == ["a", "c"]
    assert store.objects()[0] == new_a


async def test_an_edit_that_cannot_be_made_writes_nothing(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(dump_yaml([make_rule("a")]))
    await store.start()

    def changed_meanwhile(path: Path, changes: object) -> config_files.FileChange:
        # What edited_file says when the file changed between the scan and the edit.
        raise ConfigError([ConfigProblem("is no longer defined in this file", source=str(path))])

    monkeypatch.setattr("weft.config.directory.edited_file", changed_meanwhile)
    with pytest.raises(ConfigError, match="is no longer defined in this file"):
        store.apply([make_rule("a", "default", "v2"), make_rule("b")])
    assert list(tmp_path.glob("*")) == [path]  # not even the new object's file
    assert [o.metadata.name for o in store.objects()] == ["a"]


# --- off the event loop ---------------------------------------------------------------------


async def test_the_loop_keeps_running_while_a_big_apply_is_written(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    await store.start()
    gaps: list[float] = []

    async def ticker(done: asyncio.Event) -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    done = asyncio.Event()
    task = asyncio.create_task(ticker(done))
    objects = rules(make_rule, 2000, "v1")
    started = time.perf_counter()
    assert len(await store.apply_async(objects)) == 2000
    took = time.perf_counter() - started
    assert len(await store.delete_async([o.key for o in objects])) == 2000
    done.set()
    await task
    assert store.objects() == ()
    # Done on the loop, the apply alone would be one gap as long as itself.
    assert max(gaps) < max(0.25, took / 4), (max(gaps), took)


async def test_an_apply_is_served_whole_never_half(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    await store.start()  # polling every 10 ms meanwhile
    seen: list[int] = []
    store.subscribe(lambda: seen.append(len(store.objects())))
    await store.apply_async(rules(make_rule, 500))
    await store.delete_async([key(f"r{i:04d}") for i in range(500)])
    assert seen == [500, 0]


async def test_synchronous_changes_wait_for_no_one(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    await store.start()
    writing = asyncio.create_task(store.apply_async(rules(make_rule, 300)))
    while not store._writing:
        await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="a change is being written"):
        store.apply([make_rule("x")])
    with pytest.raises(RuntimeError, match="a change is being written"):
        store.rescan()
    await writing
    assert store.apply([make_rule("x")]) == [key("x")]


async def test_the_watcher_spends_at_most_a_fifth_of_its_time_scanning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weft.config import scan as scan_module

    scans: list[float] = []

    def slow_scan(*args: object, **kwargs: object) -> scan_module.View:
        started = time.monotonic()
        time.sleep(0.05)  # as a directory of thousands of files takes
        view = scan_module.scan(*args, **kwargs)  # type: ignore[arg-type]
        scans.append(time.monotonic() - started)
        return view

    monkeypatch.setattr("weft.config.directory.scan", slow_scan)
    store = DirectoryStore(tmp_path, poll_interval=0.01)
    await store.start()
    scans.clear()  # the first, in start(), is not the watcher's
    started = time.monotonic()
    await asyncio.sleep(1.0)
    await store.stop()
    elapsed = time.monotonic() - started
    assert len(scans) >= 2  # it does keep watching
    assert sum(scans) <= elapsed / 4  # a fifth of the time, and some slack for the clock
