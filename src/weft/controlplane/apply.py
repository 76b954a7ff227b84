"""`weft apply` on the control plane's side: a YAML text of objects stored or deleted as one
change, with the parsing, validation and file writing off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from weft.api import ConfigKey, IstioObject
from weft.api.loader import load_yaml
from weft.controlplane.admin_backend import ConfigAccess

# A body this large makes a bulk change (about 1,000 Istio objects and up).
BULK_BYTES = 256 * 1024


async def apply_text(
    store: ConfigAccess, text: str, source: str, *, delete: bool = False
) -> dict[str, Any]:
    """Apply (or delete) every object of `text`, and say what became of each.

    Nothing is stored if any document is bad: ConfigError lists every problem.
    """
    with _collector_held(len(text) >= BULK_BYTES):
        parsed = _Parsed(await asyncio.to_thread(load_yaml, text, source))
        if delete:
            changed = await store.delete_async(parsed.keys())
            verb = "deleted"
        else:
            changed = await store.apply_async(parsed.objects)
            verb = "configured"
        # Built, and the parsed objects let go of, in a worker: for 10,000 objects either
        # would stall the loop for a while.
        return await asyncio.to_thread(parsed.answer, set(changed), verb)


class _Parsed:
    def __init__(self, objects: list[IstioObject]) -> None:
        self.objects = objects

    def keys(self) -> list[ConfigKey]:
        return [o.key for o in self.objects]

    def answer(self, changed: set[ConfigKey], verb: str) -> dict[str, Any]:
        objects, self.objects = self.objects, []
        return {
            "results": [
                {
                    "kind": o.kind,
                    "namespace": o.metadata.namespace,
                    "name": o.metadata.name,
                    "result": verb if o.key in changed else "unchanged",
                }
                for o in objects
            ],
            "count": len({o.key for o in objects}),
        }


_held = 0  # bulk changes in progress
_was_enabled = True


@contextlib.contextmanager
def _collector_held(bulk: bool) -> Iterator[None]:
    """During a bulk change, no cyclic garbage collection; after it, what it left alive is
    moved out of the collector's sight, as the control plane does with what it loads at start.

    A bulk change allocates about a hundred Python objects per Istio object, nearly all of
    them to live as long as the config. Each collection of a young generation traverses them,
    and holds every thread (the event loop's too) meanwhile: at 10,000 objects, one took
    0.3-1 s. Garbage is still freed by reference counting; what is frozen is never collected
    as a cycle (config objects form none).
    """
    global _held, _was_enabled
    if not bulk:
        yield
        return
    if _held == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _held == 0 and _was_enabled:
            gc.freeze()
            gc.enable()
