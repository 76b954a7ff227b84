from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from weft.api import ConfigKey, DestinationRule, IstioObject, dump_yaml
from weft.config import ConfigStore, DirectoryStore

MakeRule = Callable[..., DestinationRule]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


def rule_yaml(name: str, *subsets: str, namespace: str = "default") -> str:
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: DestinationRule",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        f"spec:\n  host: {name}",
    ]
    if subsets:
        lines.append("  subsets:")
        lines += [f"  - {{name: {s}, labels: {{version: {s}}}}}" for s in subsets]
    return "\n".join(lines) + "\n"


def subsets(obj: IstioObject) -> list[str]:
    assert isinstance(obj, DestinationRule)
    return [s.name for s in obj.spec.subsets]


def names(store: ConfigStore) -> list[str]:
    return [obj.metadata.name for obj in store.objects()]


def key(name: str) -> ConfigKey:
    return ConfigKey("DestinationRule", "default", name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DirectoryStore]:
    s = DirectoryStore(tmp_path, poll_interval=0.01)
    yield s
    await s.stop()


async def test_initial_load_reads_the_whole_tree(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("a"))
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "b.yml").write_text(rule_yaml("b"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",'
        ' "metadata": {"name": "c"}, "spec": {"host": "c"}}'
    )
    (tmp_path / ".weft-state").mkdir()
    (tmp_path / ".weft-state" / "x.yaml").write_text(rule_yaml("hidden"))
    (tmp_path / ".#a.yaml").write_text("editor lock file")
    (tmp_path / "README.md").write_text("# not config")
    store = DirectoryStore(tmp_path)
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    await store.start()
    try:
        assert names(store) == ["a", "b", "c"]
        assert store.problems() == ()
        assert calls == [1]
    finally:
        await store.stop()


async def test_edit_is_picked_up(
    tmp_path: Path, store: DirectoryStore, eventually: Eventually
) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text(rule_yaml("reviews", "v1"))
    await store.start()
    changes: list[int] = []
    store.subscribe(lambda: changes.append(len(store.objects())))

    path.write_text(rule_yaml("reviews", "v2"))  # same size: caught by content, not stamp
    await eventually(lambda: bool(changes))
    assert subsets(store.objects()[0]) == ["v2"]

    (tmp_path / "ratings.yaml").write_text(rule_yaml("ratings"))
    await eventually(lambda: names(store) == ["ratings", "reviews"])


async def test_bad_file_keeps_last_good_objects_until_fixed(
    tmp_path: Path, store: DirectoryStore, eventually: Eventually, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text(rule_yaml("reviews", "v1"))
    await store.start()
    good = store.objects()
    caplog.set_level(logging.WARNING, logger="weft.config")

    path.write_text(rule_yaml("reviews", "v1", "v1"))
    await eventually(lambda: bool(store.problems()))
    assert store.objects() == good
    (problem,) = store.problems()
    assert str(problem) == (
        f"{path}: DestinationRule default/reviews: spec.subsets[1].name: subset name 'v1' is "
        "already used by spec.subsets[0] (give each subset a unique name)"
    )
    store.rescan()
    store.rescan()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per change, not once per scan
    assert "subset name 'v1' is already used" in warnings[0].getMessage()

    path.write_text(rule_yaml("reviews", "v1", "v2"))
    await eventually(lambda: not store.problems())
    assert subsets(store.objects()[0]) == ["v1", "v2"]


async def test_file_bad_from_the_start_serves_nothing(
    tmp_path: Path, store: DirectoryStore
) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    (tmp_path / "ok.yaml").write_text(rule_yaml("ok"))
    await store.start()
    assert names(store) == ["ok"]
    (problem,) = store.problems()
    assert problem.source == str(tmp_path / "broken.yaml")
    assert "YAML syntax error at line" in problem.message


async def test_deleting_a_file_removes_its_objects(
    tmp_path: Path, store: DirectoryStore, eventually: Eventually
) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("a") + "---\n" + rule_yaml("b"))
    (tmp_path / "c.yaml").write_text(rule_yaml("c"))
    await store.start()
    assert names(store) == ["a", "b", "c"]
    (tmp_path / "a.yaml").unlink()
    await eventually(lambda: names(store) == ["c"])


async def test_same_key_in_two_files_first_path_wins(
    tmp_path: Path, store: DirectoryStore, eventually: Eventually
) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("reviews", "from-a"))
    (tmp_path / "b.yaml").write_text(rule_yaml("reviews", "from-b"))
    await store.start()
    (reviews,) = store.objects()
    assert subsets(reviews) == ["from-a"]
    (problem,) = store.problems()
    assert str(problem).startswith(
        f"{tmp_path / 'b.yaml'}: DestinationRule default/reviews: is also defined in "
        f"{tmp_path / 'a.yaml'}, which takes precedence; this copy is ignored"
    )

    (tmp_path / "a.yaml").unlink()
    await eventually(lambda: subsets(store.objects()[0]) == ["from-b"])
    assert store.problems() == ()


async def test_subscribers_only_hear_real_changes(
    tmp_path: Path, store: DirectoryStore, eventually: Eventually
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(rule_yaml("a", "v1"))
    await store.start()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))

    # Same objects written differently: a comment and flow style.
    path.write_text("# owned by team A\n" + dump_yaml(store.objects()))
    (tmp_path / "notes.yaml").write_text("# empty for now\n")
    (tmp_path / "broken.yaml").write_text("{")
    await eventually(lambda: len(store.problems()) == 1)
    store.rescan()
    assert calls == []

    path.write_text(rule_yaml("a", "v2"))
    await eventually(lambda: calls == [1])


async def test_apply_new_object_goes_to_its_own_file(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    await store.start()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    assert store.apply([make_rule("ratings", "prod", "v1")]) == [
        ConfigKey("DestinationRule", "prod", "ratings")
    ]
    assert names(store) == ["ratings"]  # at once, without waiting for the poller
    assert calls == [1]
    path = tmp_path / "destinationrule-prod-ratings.yaml"
    assert path.read_text() == dump_yaml([make_rule("ratings", "prod", "v1")])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


async def test_apply_replaces_single_object_file(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    path = tmp_path / "reviews.yaml"
    path.write_text("# reviews routing\n" + rule_yaml("reviews", "v1"))
    await store.start()
    new = make_rule("reviews", "default", "v1", "v2")
    assert store.apply([new]) == [key("reviews")]
    assert store.objects() == (new,)
    assert path.read_text() == "# reviews routing\n" + dump_yaml([new])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.yaml"]


@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["plain", "byte-order-mark"])
async def test_apply_replaces_one_document_of_many(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule, bom: str
) -> None:
    first = bom + "# first\n" + rule_yaml("a", "v1")
    third = "# third, kept as written\n" + rule_yaml("c", "v1")
    path = tmp_path / "all.yaml"
    path.write_text(first + "---\n" + rule_yaml("b", "v1") + "---\n" + third)
    await store.start()

    assert store.apply([make_rule("b", "default", "v9")]) == [key("b")]
    assert path.read_text() == (
        first + "---\n" + dump_yaml([make_rule("b", "default", "v9")]) + "---\n" + third
    )
    assert [subsets(o) for o in store.objects()] == [["v1"], ["v9"], ["v1"]]


async def test_apply_unchanged_object_writes_nothing(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(rule_yaml("a", "v1"))
    await store.start()
    before = path.stat().st_mtime_ns
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    assert store.apply([make_rule("a", "default", "v1")]) == []
    assert path.stat().st_mtime_ns == before
    assert calls == []


async def test_apply_to_a_file_with_problems_is_refused(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    from weft.errors import ConfigError

    path = tmp_path / "a.yaml"
    path.write_text(rule_yaml("a", "v1"))
    await store.start()
    path.write_text(rule_yaml("a", "v1") + "---\n" + rule_yaml("b", "x", "x"))
    store.rescan()
    with pytest.raises(ConfigError) as info:
        store.apply([make_rule("a", "default", "v2")])
    assert str(info.value) == (
        f"{path}: cannot edit this file while it has problems "
        "(fix or remove the problems reported for this file first)"
    )


async def test_delete_removes_file_or_document(tmp_path: Path, store: DirectoryStore) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("a"))
    multi = tmp_path / "multi.yaml"
    multi.write_text(rule_yaml("b") + "---\n" + rule_yaml("c"))
    await store.start()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))

    assert store.delete([key("a"), key("missing")]) == [key("a")]
    assert not (tmp_path / "a.yaml").exists()
    assert store.delete([key("b")]) == [key("b")]
    assert multi.read_text() == rule_yaml("c")
    assert names(store) == ["c"]
    assert store.delete([key("c")]) == [key("c")]
    assert not multi.exists()
    assert store.objects() == ()
    assert calls == [1, 1, 1]
    assert store.delete([key("c")]) == []


async def test_delete_removes_every_copy_of_a_duplicated_key(
    tmp_path: Path, store: DirectoryStore
) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("reviews", "x"))
    (tmp_path / "b.yaml").write_text(rule_yaml("reviews", "y"))
    await store.start()
    assert store.delete([key("reviews")]) == [key("reviews")]
    assert store.objects() == ()
    assert store.problems() == ()


async def test_edits_in_json_and_list_files(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    (tmp_path / "one.json").write_text(
        '{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",'
        ' "metadata": {"name": "j"}, "spec": {"host": "j"}}'
    )
    items = "".join(
        f"- {line}\n" if i == 0 else f"  {line}\n"
        for i, line in enumerate(rule_yaml("l1").splitlines())
    )
    items += "".join(
        f"- {line}\n" if i == 0 else f"  {line}\n"
        for i, line in enumerate(rule_yaml("l2").splitlines())
    )
    (tmp_path / "list.yaml").write_text("apiVersion: v1\nkind: List\nitems:\n" + items)
    await store.start()
    assert names(store) == ["j", "l1", "l2"]

    store.apply([make_rule("j", "default", "v1"), make_rule("l2", "default", "v1")])
    assert [subsets(o) for o in store.objects()] == [["v1"], [], ["v1"]]
    assert '"subsets"' in (tmp_path / "one.json").read_text()

    store.delete([key("l1"), key("j")])
    assert names(store) == ["l2"]
    assert not (tmp_path / "one.json").exists()
    assert (tmp_path / "list.yaml").exists()


async def test_missing_directory_is_a_problem_until_apply_creates_it(
    tmp_path: Path, make_rule: MakeRule
) -> None:
    root = tmp_path / "config"
    store = DirectoryStore(root, poll_interval=0.01)
    await store.start()
    try:
        (problem,) = store.problems()
        assert problem.message == f"config directory {root} does not exist"
        store.apply([make_rule("a")])
        assert names(store) == ["a"]
        assert store.problems() == ()
    finally:
        await store.stop()


async def test_stop_ends_the_watcher(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, poll_interval=0.01)
    await store.start()
    task = store._task
    assert task is not None and not task.done()
    await store.stop()
    assert task.done()
    await store.stop()  # stopping twice is harmless


# --- identity: unchanged objects stay the same instances ---------------------------------------


async def test_editing_one_object_keeps_the_instances_of_the_others(
    tmp_path: Path, store: DirectoryStore
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("---\n".join(rule_yaml(n, "v1") for n in ("a", "b", "c")))
    await store.start()
    a, b, c = store.objects()

    path.write_text("---\n".join(rule_yaml(n, "v2" if n == "b" else "v1") for n in "abc"))
    assert store.rescan() is True

    new_a, new_b, new_c = store.objects()
    assert new_a is a and new_c is c  # equal after the re-read: the very same instances
    assert new_b is not b and subsets(new_b) == ["v2"]


async def test_rewriting_a_file_with_equal_objects_changes_nothing(
    tmp_path: Path, store: DirectoryStore
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(rule_yaml("a", "v1") + "---\n" + rule_yaml("b"))
    await store.start()
    before = store.objects()

    path.write_text("# reformatted\n" + dump_yaml(before))
    assert store.rescan() is False
    assert store.objects() is before


async def test_object_moved_to_another_file_keeps_its_instance(
    tmp_path: Path, store: DirectoryStore
) -> None:
    (tmp_path / "a.yaml").write_text(rule_yaml("a", "v1") + "---\n" + rule_yaml("b", "v1"))
    await store.start()
    a, b = store.objects()

    (tmp_path / "a.yaml").write_text(rule_yaml("a", "v1"))
    (tmp_path / "b.yaml").write_text(rule_yaml("b", "v1") + "---\n" + rule_yaml("c"))
    assert store.rescan() is True
    assert names(store) == ["a", "b", "c"]
    assert store.objects()[0] is a
    assert store.objects()[1] is b


async def test_apply_keeps_the_instances_of_untouched_objects(
    tmp_path: Path, store: DirectoryStore, make_rule: MakeRule
) -> None:
    (tmp_path / "all.yaml").write_text(rule_yaml("a", "v1") + "---\n" + rule_yaml("b", "v1"))
    (tmp_path / "c.yaml").write_text(rule_yaml("c", "v1"))
    await store.start()
    a, _, c = store.objects()

    new_b = make_rule("b", "default", "v2")
    assert store.apply([make_rule("a", "default", "v1"), new_b]) == [key("b")]
    assert store.objects() == (a, new_b, c)
    assert store.objects()[0] is a and store.objects()[2] is c


async def test_a_touched_file_is_not_parsed_again(
    tmp_path: Path, store: DirectoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(rule_yaml("a", "v1"))
    store.rescan()  # not started: scans only when the test says so
    parsed: list[str] = []

    def load_yaml(text: str, source: str) -> list[IstioObject]:
        parsed.append(source)
        return []

    monkeypatch.setattr("weft.config.scan.load_yaml", load_yaml)
    path.write_text(path.read_text())  # a new mtime, the same bytes
    assert store.rescan() is False
    assert parsed == []
    assert names(store) == ["a"]
