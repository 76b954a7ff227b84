"""The interface every config source implements, and the pieces the implementations share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from weft.api import ConfigKey, IstioObject, validate
from weft.errors import ConfigError, ConfigProblem

logger = logging.getLogger("weft.config")


class ConfigStore(Protocol):
    """A source of Istio config: the valid objects, what is wrong, and change notification."""

    def objects(self) -> tuple[IstioObject, ...]:
        """The current valid objects, sorted by key."""
        ...

    def problems(self) -> tuple[ConfigProblem, ...]:
        """What is currently wrong (bad files, conflicts); those objects are not served."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (synchronously, on the event loop) after every change to objects()."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def apply(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        """Create or replace; return the keys whose object actually changed."""
        ...

    def delete(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        """Remove; return the keys that existed. Missing keys are not an error."""
        ...

    async def apply_async(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        """apply(), leaving the event loop free to serve meanwhile (however many objects)."""
        ...

    async def delete_async(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        """delete(), leaving the event loop free to serve meanwhile (however many keys)."""
        ...


class Subscribers:
    """Change callbacks; one failing callback is logged and does not stop the others."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                logger.exception("config change subscriber %r failed", callback)


def check_batch(objects: Sequence[IstioObject], source: str = "apply") -> None:
    """Refuse the whole batch if any object is invalid or the same key appears twice."""
    problems: list[ConfigProblem] = []
    seen: set[ConfigKey] = set()
    for obj in objects:
        problems.extend(replace(p, source=source) for p in validate(obj))
        if obj.key in seen:
            problems.append(
                ConfigProblem(
                    message="appears twice in one apply",
                    source=source,
                    kind=obj.kind,
                    namespace=obj.metadata.namespace,
                    name=obj.metadata.name,
                    hint="apply each object once",
                )
            )
        seen.add(obj.key)
    if problems:
        raise ConfigError(problems)


def sorted_objects(objects: dict[ConfigKey, IstioObject]) -> tuple[IstioObject, ...]:
    return tuple(objects[key] for key in sorted(objects))
