"""The clock that registry expiry judges agents by: time the control plane was listening.

A heartbeat that reaches the control plane while its event loop is stalled (a long piece of
work on the loop, a paused process, a host that was suspended) waits in the socket until the
loop runs again; it arrived in time, and so the stall must not count against its agent. The
expiry loop ticks this clock every `interval` seconds. A tick that comes later than
`interval + tolerance` ends a stall: the clock counts at most `interval + tolerance` for it,
and that tick expires nothing, so heartbeats that waited in the socket are read before any
expiry runs again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LivenessClock:
    """A monotonic clock (`now()`) that runs with `clock` except across the loop's stalls."""

    def __init__(
        self,
        interval: float,
        tolerance: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._longest = interval + (interval / 2 if tolerance is None else tolerance)
        self._clock = clock
        self._ticked_at = clock()  # real time of the last tick
        self._counted = self._ticked_at  # this clock's time at the last tick

    def now(self) -> float:
        """Time counted up to now: never more than one on-time interval past the last tick."""
        return self._counted + min(self._clock() - self._ticked_at, self._longest)

    def tick(self) -> bool:
        """Count the time since the last tick; True if it came on time (expiry may run)."""
        real = self._clock()
        elapsed = real - self._ticked_at
        self._counted += min(elapsed, self._longest)
        self._ticked_at = real
        return elapsed <= self._longest
