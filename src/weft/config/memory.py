"""A config store held in memory: for tests, embedding, and as the reference behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from weft.api import ConfigKey, IstioObject
from weft.config.store import Subscribers, check_batch, sorted_objects
from weft.errors import ConfigProblem


class MemoryStore:
    """Objects live only in this process; every change is immediate.

    Applying an object equal to the stored one keeps the stored instance, so objects()
    returns the same instances for everything a change did not touch.
    """

    def __init__(self, objects: Iterable[IstioObject] = ()) -> None:
        initial = list(objects)
        check_batch(initial, source="MemoryStore")
        self._by_key: dict[ConfigKey, IstioObject] = {obj.key: obj for obj in initial}
        self._objects = sorted_objects(self._by_key)
        self._subscribers = Subscribers()

    def objects(self) -> tuple[IstioObject, ...]:
        return self._objects

    def problems(self) -> tuple[ConfigProblem, ...]:
        return ()

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.add(callback)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        check_batch(objects)
        return self._store(objects)

    def _store(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        changed = [obj for obj in objects if self._by_key.get(obj.key) != obj]
        for obj in changed:
            self._by_key[obj.key] = obj
        self._changed(bool(changed))
        return [obj.key for obj in changed]

    def delete(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        removed = [key for key in dict.fromkeys(keys) if self._by_key.pop(key, None) is not None]
        self._changed(bool(removed))
        return removed

    async def apply_async(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        await asyncio.to_thread(check_batch, objects)  # validation is the only slow part
        return self._store(objects)

    async def delete_async(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        return self.delete(keys)

    def _changed(self, changed: bool) -> None:
        if changed:
            self._objects = sorted_objects(self._by_key)
            self._subscribers.notify()
