"""Edit config files one object at a time, the way kubectl edits a cluster.

Replacing or removing objects rewrites only the documents that define them; the other
documents of a file keep their text, comments included. Every write is atomic, and a change
to many objects reads, parses and writes each file it touches once.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from weft.api import (
    ConfigKey,
    IstioObject,
    dump_yaml,
    load_json,
    load_yaml,
    parse_object,
    to_dict,
)
from weft.api.loader import is_json_path, parse_events, read_documents
from weft.errors import ConfigError, ConfigProblem

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def is_config_file(name: str) -> bool:
    # Dot-files are editor swap files, lock links and our own temporary files.
    return not name.startswith(".") and name.lower().endswith(CONFIG_SUFFIXES)


def raw_key(data: Any) -> ConfigKey | None:
    """The key a raw (unparsed) document would have, or None if it has no identity."""
    if not isinstance(data, dict):
        return None
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return None
    kind, name = data.get("kind"), meta.get("name")
    namespace = meta.get("namespace") or "default"
    if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(namespace, str):
        return None
    return ConfigKey(kind, namespace, name)


def new_file_paths(root: Path, objects: Sequence[IstioObject]) -> list[Path]:
    """Where new objects go: <kind>-<namespace>-<name>.yaml, never over another file."""
    taken: set[Path] = set()
    paths: list[Path] = []
    for obj in objects:
        stem = f"{obj.kind.lower()}-{obj.metadata.namespace}-{obj.metadata.name}"
        path = root / f"{stem}.yaml"
        n = 2
        while path in taken or path.exists():
            path = root / f"{stem}-{n}.yaml"
            n += 1
        taken.add(path)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class FileChange:
    """What one file becomes: its new bytes and the objects they hold (None: it is deleted).

    Made first, then written: an edit that cannot be made stops a change before it writes.
    """

    path: Path
    data: bytes | None
    objects: tuple[IstioObject, ...]


@dataclass(frozen=True)
class Written:
    """A file as a change left it, so a scan need not read it back (stat None: deleted)."""

    change: FileChange
    stat: os.stat_result | None


def new_file(path: Path, obj: IstioObject) -> FileChange:
    """A new file holding `obj` alone."""
    doc = to_dict(obj)
    # What reading the file back gives, without parsing the YAML just written from `doc`.
    written = parse_object(doc, str(path), 0)
    return FileChange(path, _yaml_text(doc).encode(), (written,))


def removed_file(path: Path) -> FileChange:
    return FileChange(path, None, ())


def edited_file(path: Path, changes: Mapping[ConfigKey, IstioObject | None]) -> FileChange:
    """The file with the document defining each key replaced by its object (None: removed).

    The file is read and parsed once however many of its objects change; a file left with no
    objects is deleted. The new text is parsed here, so an edit can never leave a file the
    store would reject.
    """
    source = str(path)
    text = path.read_text(encoding="utf-8")
    if is_json_path(path):
        new_text, found = _edit_json(text, changes)
    else:
        new_text, found = _edit_yaml(text, source, changes)
    missing = [key for key in changes if key not in found]
    if missing:
        raise ConfigError(
            [
                ConfigProblem(
                    f"{key} is no longer defined in this file",
                    source=source,
                    hint="the file changed while it was being edited; try again",
                )
                for key in missing
            ]
        )
    remaining = tuple(_objects_in(new_text, path)) if new_text.strip() else ()
    if not remaining:
        return removed_file(path)
    return FileChange(path, new_text.encode(), remaining)


def write_all(changes: Sequence[FileChange]) -> list[Written]:
    """Write (or delete) each file; raise the first failure once every change was tried.

    Each write waits for its fsync; with several in flight the filesystem commits them
    together (thousands of new files take a quarter of the time, or less, than one by one).
    """
    writes = [change for change in changes if change.data is not None]
    if len(writes) > 1:
        with ThreadPoolExecutor(_PARALLEL_WRITES, thread_name_prefix="weft-write") as pool:
            pending = {change.path: pool.submit(_write, change) for change in writes}
            # Deletions need no fsync: made here meanwhile, one by one, as every thread more
            # competes with the event loop for the interpreter.
            outcomes = {c.path: _attempt(c) for c in changes if c.data is None}
        outcomes |= {
            path: future.exception() or future.result() for path, future in pending.items()
        }
    else:
        outcomes = {change.path: _attempt(change) for change in changes}
    for outcome in outcomes.values():
        if isinstance(outcome, BaseException):
            raise outcome
    return [cast(Written, outcomes[change.path]) for change in changes]


def _attempt(change: FileChange) -> Written | BaseException:
    try:
        return _write(change)
    except Exception as exc:
        return exc


_PARALLEL_WRITES = 4


def _write(change: FileChange) -> Written:
    if change.data is None:
        change.path.unlink(missing_ok=True)
        return Written(change, None)
    change.path.parent.mkdir(parents=True, exist_ok=True)
    return Written(change, write_atomic(change.path, change.data))


def _objects_in(text: str, path: Path) -> list[IstioObject]:
    if is_json_path(path):
        return load_json(text, str(path))
    return load_yaml(text, str(path))


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    explicit: bool  # starts with its own '---' line


def _document_spans(text: str) -> list[_Span]:
    spans: list[_Span] = []
    start, explicit = 0, False
    bom = 1 if text.startswith("\ufeff") else 0  # not counted in libyaml's offsets
    for event in parse_events(text[bom:]):
        if isinstance(event, yaml.DocumentStartEvent) and event.start_mark is not None:
            start, explicit = bom + event.start_mark.index, bool(event.explicit)
        elif isinstance(event, yaml.DocumentEndEvent) and event.end_mark is not None:
            spans.append(_Span(start, bom + event.end_mark.index, explicit))
    return spans


def _is_list(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("kind") == "List"
        and isinstance(data.get("items"), list)
    )


def _edit_items(
    items: list[Any], changes: Mapping[ConfigKey, IstioObject | None], found: set[ConfigKey]
) -> list[Any] | None:
    """`items` with the changed ones replaced or removed; None if none of them changes."""
    edited: list[Any] = []
    touched = False
    for item in items:
        key = raw_key(item)
        if key is None or key not in changes or key in found:
            edited.append(item)
            continue
        found.add(key)
        touched = True
        obj = changes[key]
        if obj is not None:
            edited.append(to_dict(obj))
    return edited if touched else None


def _edit_yaml(
    text: str, source: str, changes: Mapping[ConfigKey, IstioObject | None]
) -> tuple[str, set[ConfigKey]]:
    """The text with the changed documents spliced in; every other byte stays as written."""
    found: set[ConfigKey] = set()
    docs = read_documents(text, source)
    spans = _document_spans(text)
    if len(spans) != len(docs):  # both walk the same stream; a mismatch means a parser quirk
        return text, found
    pieces: list[str] = []
    done = 0  # text before this offset is in `pieces`
    first_removed = False
    for doc, span in zip(docs, spans, strict=True):
        replacement = _edited_document(doc.data, changes, found)
        if replacement is None:
            continue
        if replacement and span.explicit:
            replacement = "---\n" + replacement
        first_removed |= span.start == 0 and not replacement
        pieces += [text[done : span.start], replacement]
        done = span.end
    result = "".join(pieces) + text[done:]
    if first_removed and result.startswith("---\n"):
        result = result[4:]  # the next document became the first; its marker is noise
    return result, found


def _edited_document(
    data: Any, changes: Mapping[ConfigKey, IstioObject | None], found: set[ConfigKey]
) -> str | None:
    """A document's new text ("" to remove it), or None if no change is for it."""
    if _is_list(data):
        items = _edit_items(data["items"], changes, found)
        if items is None:
            return None
        return _yaml_text({**data, "items": items}) if items else ""
    key = raw_key(data)
    if key is None or key not in changes or key in found:
        return None
    found.add(key)
    obj = changes[key]
    return dump_yaml([obj]) if obj is not None else ""


def _edit_json(
    text: str, changes: Mapping[ConfigKey, IstioObject | None]
) -> tuple[str, set[ConfigKey]]:
    found: set[ConfigKey] = set()
    data = json.loads(text)
    if isinstance(data, list) or _is_list(data):
        items = _edit_items(data if isinstance(data, list) else data["items"], changes, found)
        if items is None:
            return text, found
        if not items:
            return "", found
        new: Any = items if isinstance(data, list) else {**data, "items": items}
    else:
        key = raw_key(data)
        if key is None or key not in changes:
            return text, found
        found.add(key)
        obj = changes[key]
        if obj is None:
            return "", found
        new = to_dict(obj)
    return json.dumps(new, indent=2) + "\n", found


def _yaml_text(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: five times faster


def write_atomic(path: Path, data: bytes) -> os.stat_result:
    """Write via a temporary file in the same directory and rename, so readers never see half.

    Returns the written file's stat (a rename keeps the inode and the modification time).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            written = os.fstat(f.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written
