"""A config store backed by a directory of YAML/JSON files, watched by polling.

Polling (stat of every file) instead of inotify keeps this portable and dependency-free.
Scans, applies and deletes cost time linear in the directory's size, and the poller and the
`*_async` changes do that work in a worker thread: with thousands of files the event loop goes
on serving xDS, the CA and the admin API meanwhile, and still sees each change whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from weft.api import ConfigKey, IstioObject
from weft.config.files import (
    FileChange,
    edited_file,
    new_file,
    new_file_paths,
    removed_file,
    write_all,
)
from weft.config.scan import View, scan
from weft.config.store import Subscribers, check_batch, logger
from weft.errors import ConfigError, ConfigProblem

_SCANNING_AT_MOST = 4  # the pause after a scan, in scans of that length


class DirectoryStore:
    """Serves every object in *.yaml, *.yml and *.json under `path` (dot-directories skipped).

    A file with any problem is reported and keeps serving its last good objects; when a key
    is defined in two files, the lexically first path wins and the other is reported.
    An object equal to the one served before under its key is served as that same instance,
    even when its file was re-read, so caches keyed by object identity keep hitting.

    Call every method from the event loop's thread. The poller, `refresh()` and the `*_async`
    changes work in a worker thread, one at a time; the synchronous methods work on the
    caller's thread and refuse to run while an asynchronous change is being written.
    """

    def __init__(self, path: Path, poll_interval: float = 0.25) -> None:
        self._root = Path(path)
        self._poll_interval = poll_interval
        self._view = View()
        self._subscribers = Subscribers()
        self._task: asyncio.Task[None] | None = None
        # One worker at a time, so a scan never serves half of an apply.
        self._lock = asyncio.Lock()
        self._writing = False

    @property
    def path(self) -> Path:
        return self._root

    def objects(self) -> tuple[IstioObject, ...]:
        return self._view.objects

    def problems(self) -> tuple[ConfigProblem, ...]:
        return self._view.problems

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.add(callback)

    async def start(self) -> None:
        """Load the directory now, then keep watching it until stop()."""
        if self._task is not None:
            return
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name=f"weft config poll {self._root}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        took = 0.0
        while True:
            # Scanning 10,000 files takes about 0.1 s of a core: the pause after a scan grows
            # with it, so the watcher never takes more than a fifth of a core.
            await asyncio.sleep(max(self._poll_interval, _SCANNING_AT_MOST * took))
            started = time.monotonic()
            try:
                await self.refresh()
            except Exception:  # the watcher must outlive any one bad scan
                logger.exception("scanning config directory %s failed", self._root)
            took = time.monotonic() - started

    def rescan(self) -> bool:
        """Look at the directory now; return True when the served objects changed.

        Costs a stat per file when nothing changed: files are only re-read when their stamp
        (or, for recently written files, their digest) changed.
        """
        self._refuse_while_writing()
        return self._install(scan(self._root, self._view))

    async def refresh(self) -> bool:
        """rescan(), in a worker thread."""
        async with self._lock:
            before = self._view
            view = await asyncio.to_thread(scan, self._root, before)
            if self._view is not before:  # a synchronous rescan came in between: it is newer
                return False
            del before
            replaced = [self._view]
            try:
                return self._install(view)
            finally:
                await _let_go(replaced)

    # --- writing ---------------------------------------------------------------------------

    def apply(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        """Write each object to the file that defines it, or to a new file; return changed keys."""
        check_batch(objects)
        self._refuse_while_writing()
        return self._finish(_apply(self._root, self._view, objects))

    def delete(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        """Remove each key from every file defining it (a file left empty is deleted)."""
        self._refuse_while_writing()
        return self._finish(_delete(self._root, self._view, keys))

    async def apply_async(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        """apply(), validating, writing and reading back in a worker thread."""
        await asyncio.to_thread(check_batch, objects)
        async with self._write_lock():
            outcome = await asyncio.to_thread(_apply, self._root, self._view, objects)
            return await self._finish_async(outcome)

    async def delete_async(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        """delete(), writing and reading back in a worker thread."""
        async with self._write_lock():
            return await self._finish_async(
                await asyncio.to_thread(_delete, self._root, self._view, keys)
            )

    @contextlib.asynccontextmanager
    async def _write_lock(self) -> AsyncIterator[None]:
        async with self._lock:
            self._writing = True
            try:
                yield
            finally:
                self._writing = False

    def _refuse_while_writing(self) -> None:
        if self._writing:
            raise RuntimeError(f"{self._root}: a change is being written; await it first")

    async def _finish_async(self, outcome: _Outcome) -> list[ConfigKey]:
        replaced = [self._view]
        try:
            return self._finish(outcome)
        finally:
            await _let_go(replaced)

    def _finish(self, outcome: _Outcome) -> list[ConfigKey]:
        self._install(outcome.view)  # even after a failed write: serve what is on disk
        if outcome.error is not None:
            raise outcome.error
        return outcome.keys

    def _install(self, view: View) -> bool:
        """Serve `view`; True (and subscribers told) if its objects differ from the last."""
        before, self._view = self._view, view
        if view.problems is not before.problems:
            _log_new_problems(before.problems, view.problems)
        if view.objects is before.objects:
            return False
        self._subscribers.notify()
        return True


@dataclass(frozen=True)
class _Outcome:
    """What a change leaves: the directory's view after it, the keys it changed, or why not."""

    view: View
    keys: list[ConfigKey]
    error: Exception | None = None


def _apply(root: Path, before: View, objects: Sequence[IstioObject]) -> _Outcome:
    view = scan(root, before)
    todo = [obj for obj in objects if view.served.get(obj.key) != obj]
    edits: dict[Path, dict[ConfigKey, IstioObject | None]] = {}
    new: list[IstioObject] = []
    for obj in todo:
        defined_in = view.defined_in.get(obj.key)
        if defined_in:
            edits.setdefault(defined_in[0], {})[obj.key] = obj
        else:
            new.append(obj)

    def changes() -> list[FileChange]:
        made = [edited_file(path, objs) for path, objs in edits.items()]
        paths = new_file_paths(root, new)
        return made + [new_file(path, obj) for path, obj in zip(paths, new, strict=True)]

    return _write(root, view, edits, changes, [obj.key for obj in todo])


def _delete(root: Path, before: View, keys: Sequence[ConfigKey]) -> _Outcome:
    view = scan(root, before)
    present = [key for key in dict.fromkeys(keys) if key in view.defined_in]
    edits: dict[Path, dict[ConfigKey, IstioObject | None]] = {}
    for key in present:
        for path in view.defined_in[key]:
            edits.setdefault(path, {})[key] = None

    def changes() -> list[FileChange]:
        return [
            # A file losing every object it defines goes whole, without parsing it again.
            removed_file(path)
            if len(gone) == len(view.files[path].objects)
            else edited_file(path, gone)
            for path, gone in edits.items()
        ]

    return _write(root, view, edits, changes, present)


def _write(
    root: Path,
    view: View,
    touched: Iterable[Path],
    changes: Callable[[], list[FileChange]],
    keys: list[ConfigKey],
) -> _Outcome:
    """Make the file changes (unless a file they touch has problems), write them, scan again."""
    try:
        _refuse_bad_files(view, touched)
        made = changes()
    except Exception as exc:  # nothing written: the view stands
        return _Outcome(view, [], exc)
    if not made:
        return _Outcome(view, keys)
    try:
        written = write_all(made)
    except Exception as exc:  # re-raised on the caller's side, after it serves what is on disk
        return _Outcome(scan(root, view), [], exc)
    return _Outcome(scan(root, view, written), keys)


async def _let_go(last_references: list[View]) -> None:
    """Drop views in a worker thread: freeing the objects a big delete removed (a million
    Python objects for 10,000 Istio objects) would stall the event loop for a while."""
    await asyncio.to_thread(last_references.clear)


def _refuse_bad_files(view: View, paths: Iterable[Path]) -> None:
    problems = [
        ConfigProblem(
            "cannot edit this file while it has problems",
            source=str(path),
            hint="fix or remove the problems reported for this file first",
        )
        for path in paths
        if view.files[path].problems
    ]
    if problems:
        raise ConfigError(problems)


def _log_new_problems(before: Sequence[ConfigProblem], now: Sequence[ConfigProblem]) -> None:
    known = set(before)
    for problem in now:
        if problem not in known:
            logger.warning("config problem: %s", problem)
    fixed = {p.source for p in before} - {p.source for p in now}
    for source in sorted(s for s in fixed if s is not None):
        logger.info("config problems in %s resolved", source)
