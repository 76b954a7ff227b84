"""Edit config files one object at a time, the way kubectl edits a cluster.

Replacing or removing an object rewrites only the document that defines it; the other
documents of a file keep their text, comments included. Every write is atomic.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weft.api import ConfigKey, IstioObject, dump_yaml, load_json, load_yaml, to_dict
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


def new_file_path(root: Path, obj: IstioObject) -> Path:
    """Where a new object goes: <kind>-<namespace>-<name>.yaml, never over another file."""
    stem = f"{obj.kind.lower()}-{obj.metadata.namespace}-{obj.metadata.name}"
    path = root / f"{stem}.yaml"
    n = 2
    while path.exists():
        path = root / f"{stem}-{n}.yaml"
        n += 1
    return path


def write_new(path: Path, obj: IstioObject) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dump_yaml([obj]))


def replace_in_file(path: Path, key: ConfigKey, obj: IstioObject | None) -> None:
    """Replace the document defining `key` with `obj`, or remove it when `obj` is None.

    A file left with no objects is deleted. The new text is parsed before it is written,
    so an edit can never leave a file the store would reject.
    """
    source = str(path)
    text = path.read_text(encoding="utf-8")
    if is_json_path(path):
        new_text = _edit_json(text, key, obj)
    else:
        new_text = _edit_yaml(text, source, key, obj)
    if new_text is None:
        raise ConfigError(
            [
                ConfigProblem(
                    f"{key} is no longer defined in this file",
                    source=source,
                    hint="the file changed while it was being edited; try again",
                )
            ]
        )
    remaining = _objects_in(new_text, path) if new_text.strip() else []
    if remaining:
        write_atomic(path, new_text)
    else:
        path.unlink()


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


def _edit_items(items: list[Any], key: ConfigKey, obj: IstioObject | None) -> list[Any] | None:
    for i, item in enumerate(items):
        if raw_key(item) == key:
            return items[:i] + ([to_dict(obj)] if obj is not None else []) + items[i + 1 :]
    return None


def _edit_yaml(text: str, source: str, key: ConfigKey, obj: IstioObject | None) -> str | None:
    docs = read_documents(text, source)
    spans = _document_spans(text)
    if len(spans) != len(docs):  # both walk the same stream; a mismatch means a parser quirk
        return None
    for doc, span in zip(docs, spans, strict=True):
        if _is_list(doc.data):
            items = _edit_items(doc.data["items"], key, obj)
            if items is None:
                continue
            replacement = _yaml_text({**doc.data, "items": items}) if items else ""
            return _splice(text, span, replacement)
        if raw_key(doc.data) == key:
            return _splice(text, span, dump_yaml([obj]) if obj is not None else "")
    return None


def _splice(text: str, span: _Span, replacement: str) -> str:
    if replacement and span.explicit:
        replacement = "---\n" + replacement
    result = text[: span.start] + replacement + text[span.end :]
    if span.start == 0 and not replacement and result.startswith("---\n"):
        result = result[4:]  # the next document became the first; its marker is noise
    return result


def _edit_json(text: str, key: ConfigKey, obj: IstioObject | None) -> str | None:
    data = json.loads(text)
    if isinstance(data, list) or _is_list(data):
        items = _edit_items(data if isinstance(data, list) else data["items"], key, obj)
        if items is None:
            return None
        if not items:
            return ""
        new: Any = items if isinstance(data, list) else {**data, "items": items}
    elif raw_key(data) == key:
        if obj is None:
            return ""
        new = to_dict(obj)
    else:
        return None
    return json.dumps(new, indent=2) + "\n"


def _yaml_text(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename, so readers never see half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
