"""Debouncing config changes: a burst builds one snapshot, a stream still builds regularly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from weft.controlplane.debounce import Debouncer

QUIET = 0.1
MAX_DELAY = 0.4
DEADLINE = 5.0


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


class Builds:
    """Records each action: when it ran and how many triggers had happened by then."""

    def __init__(self) -> None:
        self.triggers = 0
        self.first_trigger_at = 0.0
        self.last_trigger_at = 0.0
        self.runs: list[tuple[float, int]] = []  # (monotonic time, triggers seen)

        self.release: asyncio.Event | None = None  # when set, each action waits for it

    async def action(self) -> None:
        self.runs.append((time.monotonic(), self.triggers))
        if self.release is not None:
            await self.release.wait()

    def trigger(self, debouncer: Debouncer) -> None:
        now = time.monotonic()
        if self.triggers == 0:
            self.first_trigger_at = now
        self.last_trigger_at = now
        self.triggers += 1
        debouncer.trigger()


@pytest.fixture
def builds() -> Builds:
    return Builds()


@pytest.fixture
async def debouncer(builds: Builds) -> AsyncIterator[Debouncer]:
    d = Debouncer(builds.action, quiet=QUIET, max_delay=MAX_DELAY)
    task = asyncio.create_task(d.run())
    try:
        yield d
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def burst(builds: Builds, debouncer: Debouncer, n: int) -> None:
    """n triggers, each well inside the quiet period of the one before."""
    for _ in range(n):
        builds.trigger(debouncer)
        await asyncio.sleep(QUIET / 10)


async def test_a_burst_of_changes_runs_the_action_once(
    builds: Builds, debouncer: Debouncer
) -> None:
    await burst(builds, debouncer, 5)
    await wait_until(lambda: len(builds.runs) >= 1, "the first build")
    # The one build came after the whole burst, so it reflects every change in it.
    assert builds.runs[0][1] == 5
    await burst(builds, debouncer, 5)
    await wait_until(lambda: len(builds.runs) >= 2, "the second build")
    assert [seen for _, seen in builds.runs] == [5, 10]


async def test_action_waits_for_the_quiet_period(builds: Builds, debouncer: Debouncer) -> None:
    builds.trigger(debouncer)
    await wait_until(lambda: bool(builds.runs), "the build")
    ran_at, _ = builds.runs[0]
    assert ran_at - builds.last_trigger_at >= QUIET


async def test_max_delay_bounds_a_continuous_stream_of_changes(
    builds: Builds, debouncer: Debouncer
) -> None:
    async def stream() -> None:
        # Never quiet for QUIET seconds: without max_delay nothing would ever be built.
        while len(builds.runs) < 2:
            builds.trigger(debouncer)
            await asyncio.sleep(QUIET / 10)

    await asyncio.wait_for(stream(), DEADLINE)
    (first_at, _), (second_at, _) = builds.runs
    assert first_at - builds.first_trigger_at >= MAX_DELAY
    # The second build also came while changes kept arriving, no later than about max_delay.
    assert second_at - first_at < MAX_DELAY + 1.0


def pending(debouncer: Debouncer) -> bool:
    return debouncer.pending


async def test_pending_until_the_action_ran(builds: Builds, debouncer: Debouncer) -> None:
    assert pending(debouncer) is False
    builds.trigger(debouncer)
    assert pending(debouncer) is True
    await asyncio.sleep(0)  # the run loop wakes and starts waiting out the quiet period
    assert pending(debouncer) is True and builds.runs == []
    await wait_until(lambda: not debouncer.pending, "pending to clear")
    assert len(builds.runs) == 1


async def test_a_change_after_a_build_is_built_too(builds: Builds, debouncer: Debouncer) -> None:
    builds.trigger(debouncer)
    await wait_until(lambda: len(builds.runs) == 1, "the first build")
    assert pending(debouncer) is False
    builds.trigger(debouncer)
    assert pending(debouncer) is True
    await wait_until(lambda: len(builds.runs) == 2, "the second build")
    assert builds.runs[1][1] == 2


async def test_changes_during_a_slow_action_are_built_after_it(
    builds: Builds, debouncer: Debouncer
) -> None:
    builds.release = asyncio.Event()  # the action is a build that takes as long as the test says
    builds.trigger(debouncer)
    await wait_until(lambda: len(builds.runs) == 1, "the first build to start")
    builds.trigger(debouncer)
    builds.trigger(debouncer)
    await asyncio.sleep(QUIET * 2)  # long past the quiet period: still only the first build
    assert len(builds.runs) == 1
    assert pending(debouncer) is True
    builds.release.set()
    await wait_until(lambda: len(builds.runs) == 2, "the second build")
    assert builds.runs[1][1] == 3  # one build for both changes made meanwhile
    await wait_until(lambda: not pending(debouncer), "pending to clear")
    assert len(builds.runs) == 2


async def test_pending_while_the_action_runs(builds: Builds, debouncer: Debouncer) -> None:
    builds.release = asyncio.Event()
    builds.trigger(debouncer)
    await wait_until(lambda: len(builds.runs) == 1, "the build to start")
    assert pending(debouncer) is True  # a snapshot is being built: not served yet
    builds.release.set()
    await wait_until(lambda: not pending(debouncer), "pending to clear")
