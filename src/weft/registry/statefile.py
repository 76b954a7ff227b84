"""The local registry's state file: one JSON entry per workload, written whole and atomically.

Each entry's JSON text is kept, so a save joins strings instead of encoding every workload
again. Saves can be coalesced: with `save_interval` > 0, a change made within that interval
of the last save is held back until a later `save_if_due()` finds the interval over, or
`flush()`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("weft.registry")


class StateFile:
    """The entries to persist, by key, and when they were last written to `path`."""

    def __init__(self, path: Path, save_interval: float, clock: Callable[[], float]) -> None:
        self.path = path
        self._save_interval = save_interval
        self._clock = clock
        self._entries: dict[Hashable, str] = {}
        self._unsaved = False
        self._saved_at = -math.inf
        self._failing = False

    def read(self) -> Any:
        """The JSON in the file; OSError (FileNotFoundError if none) or ValueError."""
        return json.loads(self.path.read_text())

    def restore(self, key: Hashable, entry: Mapping[str, Any]) -> None:
        """An entry that is already in the file (read at startup): remembered, not a change."""
        self._entries[key] = json.dumps(entry, separators=(",", ":"))

    def put(self, key: Hashable, entry: Mapping[str, Any] | None) -> None:
        """Record a change (None removes the entry), to be written by save_if_due() or flush()."""
        if entry is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = json.dumps(entry, separators=(",", ":"))
        self._unsaved = True

    def save_if_due(self) -> None:
        """Write held-back changes once `save_interval` has passed; a failed write is retried."""
        if not self._unsaved or self._clock() - self._saved_at < self._save_interval:
            return
        try:
            self.flush()
        except OSError as e:
            if not self._failing:
                log.warning("cannot save registry state to %s (will retry): %s", self.path, e)
            self._failing = True

    def flush(self) -> None:
        """Write any held-back change now (call before exit); raises OSError if it cannot."""
        if not self._unsaved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("[" + ",\n".join(self._entries.values()) + "]\n")
        os.replace(tmp, self.path)
        self._unsaved = False
        self._saved_at = self._clock()
        if self._failing:
            log.info("registry state saved to %s again", self.path)
        self._failing = False
