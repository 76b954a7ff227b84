"""`weft apply` on the control plane's side: a YAML text of objects stored or deleted as one
change, with the parsing, validation and file writing off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from weft.api.loader import load_yaml
from weft.config.store import ConfigStore


async def apply_text(
    store: ConfigStore, text: str, source: str, *, delete: bool = False
) -> dict[str, Any]:
    """Apply (or delete) every object of `text`, and say what became of each.

    Nothing is stored if any document is bad: ConfigError lists every problem.
    """
    objects = await asyncio.to_thread(load_yaml, text, source)
    if delete:
        changed = set(await store.delete_async([o.key for o in objects]))
        verb = "deleted"
    else:
        changed = set(await store.apply_async(objects))
        verb = "configured"
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
