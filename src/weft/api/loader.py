"""Read Istio objects from YAML or JSON text: all problems in a file, or all objects, never half."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from weft.api.kinds import KINDS, IstioObject
from weft.api.meta import ConfigKey
from weft.api.pydantic_errors import problems_from_validation_error
from weft.api.validation import validate
from weft.errors import ConfigError, ConfigProblem

JSON_SUFFIXES = (".json",)


@dataclass(frozen=True)
class RawDocument:
    """One document of a file before it is parsed: its 0-based position and first line."""

    index: int
    line: int | None
    data: Any

    def where(self) -> str:
        text = f"document {self.index + 1}"
        return f"{text} (line {self.line})" if self.line is not None else text


class _NoDuplicateKeys(yaml.constructor.SafeConstructor):
    """Refuses duplicate keys, which YAML would otherwise silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class _StrictPyLoader(_NoDuplicateKeys, yaml.SafeLoader):
    """The pure-Python parser: slow, but its error messages say what it expected and found."""


class _Loader(Protocol):
    def check_node(self) -> bool: ...
    def get_node(self) -> yaml.Node | None: ...
    def construct_document(self, node: yaml.Node | None) -> Any: ...
    def dispose(self) -> None: ...


_StrictLoader: Callable[[str], _Loader]
if yaml.__with_libyaml__:

    class _StrictCLoader(_NoDuplicateKeys, yaml.CSafeLoader):
        """libyaml's parser and scanner, with the same constructor and resolver as above."""

    _StrictLoader = _StrictCLoader
    _EventLoader: type[yaml.SafeLoader | yaml.CSafeLoader] = yaml.CSafeLoader
else:  # PyYAML built without libyaml
    _StrictLoader = _StrictPyLoader
    _EventLoader = yaml.SafeLoader


def parse_events(text: str) -> Iterator[yaml.Event]:
    """YAML events from the parser read_documents uses.

    Mark indexes are character offsets into `text`, provided it does not start with a
    byte-order mark (libyaml does not count one; strip it and add 1).
    """
    return yaml.parse(text, Loader=_EventLoader)


def read_documents(text: str, source: str, *, json_format: bool = False) -> list[RawDocument]:
    """Split text into raw documents (empty ones included, so indexes match the file)."""
    if json_format:
        return _read_json(text, source)
    try:
        return _read_yaml(text, _StrictLoader)
    except yaml.YAMLError as exc:
        error = exc
    if _StrictLoader is not _StrictPyLoader:
        # libyaml's messages are terser ("did not find expected key", no offending character
        # or alias name); the pure-Python parser reads the same grammar and explains better.
        # Only a broken file pays for the second parse.
        error = _reference_error(text) or error
    raise ConfigError([_yaml_problem(error, text, source)]) from None


def _read_yaml(text: str, make_loader: Callable[[str], _Loader]) -> list[RawDocument]:
    loader = make_loader(text)
    try:
        docs: list[RawDocument] = []
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else None
            docs.append(RawDocument(len(docs), line, loader.construct_document(node)))
        return docs
    finally:
        loader.dispose()


def _reference_error(text: str) -> yaml.YAMLError | None:
    try:
        _read_yaml(text, _StrictPyLoader)
    except yaml.YAMLError as exc:
        return exc
    return None


def _yaml_problem(exc: yaml.YAMLError, text: str, source: str) -> ConfigProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        return _reader_problem(exc, text, source)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return ConfigProblem(f"YAML syntax error: {exc}", source=source)
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = exc.problem or exc.context or "invalid YAML"
    line = f"line {mark.line + 1}" if mark is not None else "the reported line"
    hint = f"check indentation, quoting and ':' separators around {line}"
    if "'\\t'" in what:
        hint = f"indent with spaces around {line}: YAML does not allow tabs there"
    return ConfigProblem(message=f"YAML syntax error{where}: {what}", source=source, hint=hint)


def _reader_problem(exc: yaml.reader.ReaderError, text: str, source: str) -> ConfigProblem:
    """A character YAML refuses anywhere (control characters): where it is, by line."""
    position = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return ConfigProblem(
        message=f"YAML syntax error at line {line}, column {column}: unacceptable character "
        f"#x{exc.character:04x}: {exc.reason}",
        source=source,
        hint="remove it, or write it as an escape inside double quotes "
        f'(e.g. "\\u{exc.character:04x}")',
    )


def _read_json(text: str, source: str) -> list[RawDocument]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    source=source,
                    hint="check commas, quotes and brackets",
                )
            ]
        ) from None
    items = data if isinstance(data, list) else [data]
    return [RawDocument(i, None, item) for i, item in enumerate(items)]


def load_yaml(text: str, source: str) -> list[IstioObject]:
    """Every object in a (multi-document) YAML text; ConfigError lists every problem."""
    return load_documents(read_documents(text, source), source)


def load_json(text: str, source: str) -> list[IstioObject]:
    """Every object in a JSON text: one object, an array of objects, or a Kubernetes List."""
    return load_documents(read_documents(text, source, json_format=True), source)


def is_json_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in JSON_SUFFIXES


def load_file(path: str | Path) -> list[IstioObject]:
    """Every object in a .yaml, .yml or .json file; nothing if any document has a problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            [ConfigProblem("file is not UTF-8 text", source=source, hint="save it as UTF-8")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(f"cannot read file: {exc.strerror or exc}", source=source)]
        ) from None
    if is_json_path(path):
        return load_json(text, source)
    return load_yaml(text, source)


def load_documents(docs: list[RawDocument], source: str) -> list[IstioObject]:
    objects: list[IstioObject] = []
    problems: list[ConfigProblem] = []
    first_seen: dict[ConfigKey, str] = {}
    for doc in docs:
        for where, data in _expand(doc):
            try:
                obj = _parse(data, source, where)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if obj.key in first_seen:
                problems.append(_duplicate(obj, source, first_seen[obj.key], where))
                continue
            first_seen[obj.key] = where
            objects.append(obj)
    if problems:
        raise ConfigError(problems)
    return objects


def _expand(doc: RawDocument) -> list[tuple[str, Any]]:
    """A document is one object, nothing (empty), or a Kubernetes List of objects."""
    data = doc.data
    if data is None:
        return []
    if isinstance(data, dict) and data.get("kind") == "List" and "items" in data:
        items = data["items"] or []
        if isinstance(items, list):
            return [(f"{doc.where()}, items[{i}]", item) for i, item in enumerate(items)]
    return [(doc.where(), data)]


def _duplicate(obj: IstioObject, source: str, first: str, again: str) -> ConfigProblem:
    return ConfigProblem(
        message=f"is defined twice in this file ({first} and {again})",
        source=source,
        kind=obj.kind,
        namespace=obj.metadata.namespace,
        name=obj.metadata.name,
        hint="keep one definition; later ones would silently replace earlier ones",
    )


def parse_object(doc: Any, source: str, index: int) -> IstioObject:
    """Parse and validate one document (`index` is its 0-based position in the source)."""
    return _parse(doc, source, f"document {index + 1}")


def _parse(doc: Any, source: str, where: str) -> IstioObject:
    if not isinstance(doc, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    f"{where} is not an object (found {type(doc).__name__})",
                    source=source,
                    hint="each YAML document must be one Istio object with apiVersion, kind, "
                    "metadata and spec",
                )
            ]
        )
    identity = _identity(doc, source)
    missing = _missing_identity(doc)
    if missing:
        raise ConfigError(
            [
                replace(
                    identity,
                    message=f"{where} has no {' or '.join(missing)}",
                    hint="every object needs apiVersion (e.g. networking.istio.io/v1), kind "
                    "(e.g. VirtualService) and metadata.name",
                )
            ]
        )
    kind = doc["kind"]
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError([replace(identity, field="kind", **_unknown_kind(kind))])
    try:
        obj = cls.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(
            [
                replace(
                    p,
                    source=source,
                    kind=identity.kind,
                    namespace=identity.namespace,
                    name=identity.name,
                )
                for p in problems_from_validation_error(exc, cls)
            ]
        ) from None
    problems = [replace(p, source=source) for p in validate(obj)]
    if problems:
        raise ConfigError(problems)
    return obj


def _identity(doc: dict[str, Any], source: str) -> ConfigProblem:
    """A template problem carrying whatever identity the document has, even if incomplete."""
    kind = doc.get("kind")
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name")
    namespace = meta.get("namespace")
    return ConfigProblem(
        message="",
        source=source,
        kind=kind if isinstance(kind, str) else None,
        namespace=namespace if isinstance(namespace, str) else "default",
        name=name if isinstance(name, str) else None,
    )


def _missing_identity(doc: dict[str, Any]) -> list[str]:
    missing = [key for key in ("apiVersion", "kind") if not doc.get(key)]
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        missing.append("metadata.name")
    return missing


def _unknown_kind(kind: Any) -> dict[str, str]:
    supported = ", ".join(KINDS)
    close = difflib.get_close_matches(str(kind), list(KINDS), n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{close[0]}'? Kinds are case-sensitive"
    else:
        hint = f"supported kinds: {supported}"
    return {"message": f"kind {kind!r} is not supported", "hint": hint}
