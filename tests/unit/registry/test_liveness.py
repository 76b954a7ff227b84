"""Expiry judges agents by time the control plane was listening: a stalled loop (heartbeats
waiting unread in its socket) never expires them, and agents that really stopped still go."""

from __future__ import annotations

import pytest

from weft.registry.liveness import LivenessClock
from weft.registry.local import LocalRegistry, Workload, WorkloadPort

TTL = 15.0
INTERVAL = 1.0  # the control plane's expiry tick
HEARTBEAT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def workload(name: str) -> Workload:
    return Workload(name, "default", "reviews", "127.0.0.1", (WorkloadPort(9080, 20001),))


class ControlPlaneModel:
    """The control plane's registry and expiry tick, with time moved by the test.

    `expire_tick` is what the control plane's expiry loop does every INTERVAL seconds;
    `judge_by_loop_time=False` is the old rule: expire on every tick, by the loop's clock.
    """

    def __init__(self, judge_by_loop_time: bool = True) -> None:
        self.real = FakeClock()
        self.liveness = LivenessClock(INTERVAL, clock=self.real)
        self.judged = judge_by_loop_time
        self.registry = LocalRegistry(
            ttl=TTL, clock=self.liveness.now if judge_by_loop_time else self.real
        )
        self.expired: list[str] = []

    def expire_tick(self) -> None:
        on_time = self.liveness.tick()
        if on_time or not self.judged:
            self.expired += self.registry.expire()

    def run(self, seconds: float, heartbeats: tuple[str, ...] = ()) -> None:
        """The loop running normally: a tick a second, each agent reporting every 5 s."""
        for second in range(int(seconds)):
            self.real.now += INTERVAL
            if second % HEARTBEAT == 0:
                for name in heartbeats:
                    self.registry.report("default", name, healthy=True)
            self.expire_tick()

    def stall(self, seconds: float) -> None:
        """The loop blocked: no tick and no request read for `seconds`."""
        self.real.now += seconds


AGENTS = ("reviews-v1", "reviews-v2", "reviews-v3")


def test_a_stalled_loop_expires_no_agent_whose_heartbeats_waited_in_the_socket() -> None:
    cp = ControlPlaneModel()
    for name in AGENTS:
        cp.registry.register(workload(name))
    cp.run(12, heartbeats=AGENTS)
    cp.stall(31.0)  # an apply of 10,000 objects on the loop, as it used to be
    cp.expire_tick()  # the timer is due when the loop resumes: it runs before any request
    for name in AGENTS:  # then the heartbeats sent during the stall are read
        cp.registry.report("default", name, healthy=True)
    cp.run(60, heartbeats=AGENTS)
    assert cp.expired == []
    assert [w.name for w in cp.registry.workloads()] == list(AGENTS)


def test_judged_by_the_loops_clock_every_agent_was_expired() -> None:
    # What users saw before: every workload removed, clients answered 502 until re-registration.
    cp = ControlPlaneModel(judge_by_loop_time=False)
    for name in AGENTS:
        cp.registry.register(workload(name))
    cp.run(12, heartbeats=AGENTS)
    cp.stall(31.0)
    cp.expire_tick()
    assert sorted(cp.expired) == [f"default/{name}" for name in AGENTS]


def test_an_agent_near_its_deadline_when_the_loop_stalls_is_not_expired() -> None:
    cp = ControlPlaneModel()
    cp.registry.register(workload("reviews-v1"))
    cp.run(14)  # silent for 14 of its 15 s: its heartbeat arrives during the stall below
    cp.stall(5.0)
    cp.expire_tick()  # counts 1.5 s for the stall: past the TTL, but this tick judges no one
    assert cp.expired == []
    cp.registry.report("default", "reviews-v1", healthy=True)
    cp.run(10)
    assert cp.expired == []


def test_an_agent_that_really_stopped_still_expires_after_its_ttl_of_listening() -> None:
    cp = ControlPlaneModel()
    cp.registry.register(workload("reviews-v1"))
    cp.run(5)
    cp.stall(60.0)
    cp.expire_tick()
    cp.run(8)
    assert cp.expired == []  # 5 + 1.5 + 8 s heard: within the TTL
    cp.run(2)
    assert cp.expired == ["default/reviews-v1"]


def test_short_delays_of_a_tick_count_in_full() -> None:
    real = FakeClock()
    clock = LivenessClock(INTERVAL, clock=real)
    start = clock.now()
    for _ in range(10):
        real.now += 1.3  # a busy loop: each tick 0.3 s late, within the tolerance
        assert clock.tick() is True
    assert clock.now() - start == pytest.approx(13.0)


def test_the_clock_never_goes_back_and_stops_at_one_interval_past_a_tick() -> None:
    real = FakeClock()
    clock = LivenessClock(INTERVAL, clock=real)
    readings = [clock.now()]
    for step in (0.5, 0.5, 0.2, 3.0, 40.0, 0.1, 1.0):
        real.now += step
        readings.append(clock.now())
        if step != 0.5:
            clock.tick()
            readings.append(clock.now())
    assert readings == sorted(readings)
    before = clock.now()
    real.now += 100.0  # stalled: a heartbeat read now is stamped at most 1.5 s later
    assert clock.now() - before == pytest.approx(1.5)
