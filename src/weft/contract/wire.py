"""How a message is read off the wire: one parse, and one error that names every bad field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from weft.api.pydantic_errors import problems_from_validation_error
from weft.errors import ConfigProblem, WeftError


class WireModel(BaseModel):
    """A message between agent and control plane: camelCase on the wire, immutable, and no
    field it does not know (a misspelt field would otherwise be dropped without a word)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The message as JSON-ready data, in the wire's field names."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class MessageError(WeftError, ValueError):
    """A message that cannot be accepted: what it was, and each field that was wrong."""

    def __init__(self, what: str, problems: list[ConfigProblem]) -> None:
        self.what = what
        self.problems = problems
        details = "; ".join(str(p) for p in problems) or "unreadable"
        super().__init__(f"bad {what}: {details}")


M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], data: bytes | str | Mapping[str, Any], what: str) -> M:
    """`data` (a JSON body, or data already decoded) as `model`; MessageError if it is not."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MessageError(
                what,
                [
                    ConfigProblem(
                        f"the body is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                        f"{e.start})",
                        hint="send JSON encoded as UTF-8",
                    )
                ],
            ) from None
    try:
        if isinstance(data, str):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as e:
        raise MessageError(what, _problems(e, model)) from None


def _problems(exc: ValidationError, model: type[BaseModel]) -> list[ConfigProblem]:
    if any(err["type"] == "json_invalid" for err in exc.errors()):
        # The parser's own words ("recursion limit exceeded at line 1 column 202") say where.
        error = str(exc.errors()[0]["ctx"].get("error", ""))
        hint = "send a JSON object"
        if "recursion limit" in error:
            hint = "messages are a few levels deep; this one is nested far deeper"
        return [ConfigProblem(f"the body is not valid JSON: {error}", hint=hint)]
    return [
        replace(p, hint=None) if _about_yaml(p.hint) else p
        for p in problems_from_validation_error(exc, model)
    ]


def _about_yaml(hint: str | None) -> bool:
    # The shared wording was written for YAML files: its hints on writing YAML do not fit JSON.
    return hint is not None and ("YAML" in hint or " lines" in hint)
