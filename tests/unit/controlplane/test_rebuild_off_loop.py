"""Snapshots are built in a worker thread: the loop goes on serving meanwhile, and a change
made during a build is built next."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from weft.api import DestinationRule, DestinationRuleSpec, ObjectMeta
from weft.config.memory import MemoryStore
from weft.controlplane import app
from weft.controlplane.app import ControlPlane, ControlPlaneOptions
from weft.snapshot.snapshot import Snapshot


def rule(host: str) -> DestinationRule:
    return DestinationRule(metadata=ObjectMeta(name=host), spec=DestinationRuleSpec(host=host))


class SlowBuilds:
    """build_snapshot, held until the test releases it; records the thread each build ran in."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        self.release = threading.Event()
        real = app.build_snapshot

        def build(*args: Any, **kwargs: Any) -> Snapshot:
            self.threads.append(threading.current_thread())
            self.started.set()
            assert self.release.wait(10), "the test never released the build"
            return real(*args, **kwargs)

        monkeypatch.setattr(app, "build_snapshot", build)


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    store = MemoryStore([rule("reviews")])
    options = ControlPlaneOptions(config_dir=tmp_path / "config", state_dir=tmp_path / "state")
    control_plane = ControlPlane(options, store=store)
    store.subscribe(control_plane.changed)
    return control_plane


async def test_the_loop_serves_while_a_snapshot_is_built(
    cp: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = SlowBuilds(monkeypatch)
    rebuilding = asyncio.create_task(cp.rebuild_off_loop())
    while not builds.started.is_set():
        await asyncio.sleep(0.001)  # the loop runs: the build waits in another thread
    assert builds.threads == [builds.threads[0]]
    assert builds.threads[0] is not threading.main_thread()
    assert cp.ads.snapshot.destination_rules == ()  # not served until built
    builds.release.set()
    await rebuilding
    assert [dr.spec.host for dr in cp.ads.snapshot.destination_rules] == ["reviews"]


async def test_a_change_signalled_during_a_build_is_built_next(
    cp: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp.rebuild()  # the first snapshot
    builds = SlowBuilds(monkeypatch)
    cp.store.apply([rule("ratings")])
    rebuilding = asyncio.create_task(cp.rebuild_off_loop())
    while not builds.started.is_set():
        await asyncio.sleep(0.001)
    # As the JWKS fetcher signals a key set it fetched: the objects stay the same.
    cp.changed()
    builds.release.set()
    await rebuilding
    assert [dr.spec.host for dr in cp.ads.snapshot.destination_rules] == ["ratings", "reviews"]
    await cp.rebuild_off_loop()
    assert len(builds.threads) == 2  # built again: the change signalled meanwhile
    before = cp.ads.snapshot
    await cp.rebuild_off_loop()
    # With nothing changed since, nothing is made again: every part is the same object.
    after = cp.ads.snapshot
    assert after.version > before.version
    assert after.destination_rules is before.destination_rules
    assert after.services is before.services and after.endpoints is before.endpoints
