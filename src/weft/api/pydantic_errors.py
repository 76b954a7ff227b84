"""Turn pydantic's validation errors into ConfigProblems a user can act on."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from weft.api.base import INVALID
from weft.api.validation_common import key_path
from weft.errors import ConfigProblem

_EXPECTED: dict[str, tuple[str, str | None]] = {
    "int_type": ("expected an integer", None),
    "int_parsing": ("expected an integer", None),
    "int_from_float": ("expected a whole number", None),
    "float_type": ("expected a number", None),
    "float_parsing": ("expected a number", None),
    "bool_type": ("expected true or false", None),
    "bool_parsing": ("expected true or false", None),
    "string_type": ("expected a string", "put the value in quotes so YAML reads it as text"),
    "list_type": ("expected a list", "write each item on its own line starting with '- '"),
    "dict_type": ("expected a mapping", "write it as 'key: value' lines"),
    "model_type": ("expected a mapping of fields", "write it as 'field: value' lines"),
    "model_attributes_type": ("expected a mapping of fields", "write it as 'field: value' lines"),
}

_BOUNDS: dict[str, str] = {
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


def problems_from_validation_error(
    exc: ValidationError, model: type[BaseModel]
) -> list[ConfigProblem]:
    """One ConfigProblem per error, with the field path spelled as in the YAML."""
    return [_problem(err, model) for err in exc.errors()]


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not path:
            path = part
        else:
            path = key_path(path, part)
    return path


def _problem(err: ErrorDetails, model: type[BaseModel]) -> ConfigProblem:
    loc = tuple(err["loc"])
    message, hint = _describe(err, model)
    if loc and loc[-1] == "[key]":
        # pydantic reports a bad map key as a pseudo-field below the entry.
        loc = loc[:-1]
        message = f"key {message}" if message.startswith("'") else f"bad key: {message}"
    return ConfigProblem(message=message, field=field_path(loc) or None, hint=hint)


def _describe(err: ErrorDetails, model: type[BaseModel]) -> tuple[str, str | None]:
    kind = err["type"]
    loc = tuple(err["loc"])
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    last = str(loc[-1]) if loc else ""
    if kind == INVALID:
        return str(ctx["message"]), ctx.get("hint")
    if kind == "missing":
        return f"required field '{last}' is missing", f"add '{last}'"
    if kind == "extra_forbidden":
        return f"unknown field '{last}'", _unknown_field_hint(model, loc)
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return f"{_show(value)} is not one of {expected}", _closest(value, expected)
    if kind in _EXPECTED:
        text, hint = _EXPECTED[kind]
        if kind == "string_type" and isinstance(value, list | dict):
            hint = None
        return f"{text}, got {_show(value)}", hint
    if kind in _BOUNDS:
        bound = _BOUNDS[kind].format(**ctx)
        return (
            f"{_show(value)} is too {'small' if 'greater' in kind else 'large'}; must be {bound}",
            None,
        )
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])), None
    return err["msg"], None


def _closest(value: Any, expected: str) -> str | None:
    choices = re.findall(r"'([^']*)'", expected)
    close = difflib.get_close_matches(str(value).upper(), choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _unknown_field_hint(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    parent = model_at(model, loc[:-1])
    if parent is None:
        return None
    known = [info.alias or name for name, info in parent.model_fields.items()]
    by_case = {name.lower(): name for name in known}
    if str(loc[-1]).lower() in by_case:  # jwksURI for jwksUri: only the case is wrong
        return f"did you mean '{by_case[str(loc[-1]).lower()]}'?"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known fields here: {', '.join(known)}"


def model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class found by following `loc` (aliases, list indexes, map keys) from `model`."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field(current, str(part))
            if field is None:
                return None
            current = field
            continue
        origin = get_origin(current)
        args = get_args(current)
        if origin is list and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _field(model: type[BaseModel], name: str) -> Any:
    for attr, info in model.model_fields.items():
        if name in (attr, info.alias):
            return info.annotation
    return None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
