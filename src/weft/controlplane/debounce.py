"""Coalesce bursts of changes into one snapshot build: quiet period, bounded by a max delay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Debouncer:
    """`trigger()` from anywhere on the loop; `run()` awaits `action` once per burst.

    Changes that arrive while the action runs are coalesced into the next run.
    """

    def __init__(
        self, action: Callable[[], Awaitable[None]], quiet: float = 0.1, max_delay: float = 1.0
    ):
        self._action = action
        self._quiet = quiet
        self._max_delay = max_delay
        self._event = asyncio.Event()
        self._last = 0.0
        self._running = False

    @property
    def pending(self) -> bool:
        """A change arrived that no finished action reflects yet."""
        return self._event.is_set() or self._running

    def trigger(self) -> None:
        self._last = time.monotonic()
        self._event.set()

    async def run(self) -> None:
        while True:
            await self._event.wait()
            first = time.monotonic()
            while True:
                now = time.monotonic()
                wait = min(self._last + self._quiet, first + self._max_delay) - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._event.clear()
            self._running = True
            try:
                await self._action()
            finally:
                self._running = False
