"""A config store backed by a directory of YAML/JSON files, watched by polling.

Polling (stat of every file) instead of inotify keeps this portable and dependency-free;
a config directory holds tens of files, so a scan costs microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from weft.api import ConfigKey, IstioObject
from weft.api.loader import is_json_path, load_json, load_yaml
from weft.config.files import is_config_file, new_file_path, replace_in_file, write_new
from weft.config.store import Subscribers, check_batch, logger
from weft.errors import ConfigError, ConfigProblem


@dataclass(frozen=True)
class _Stamp:
    """Enough to notice any change: editors that rename-replace change the inode."""

    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True)
class _FileState:
    stamp: _Stamp
    digest: bytes  # of the text last read, to catch edits the stamp cannot show
    objects: tuple[IstioObject, ...]  # the last good contents; kept while the file is bad
    problems: tuple[ConfigProblem, ...]


# File timestamps come from a coarse kernel clock (often a few ms): two same-size writes
# within one tick leave an identical stamp. Files modified this recently are re-read.
_RACY_NS = 2_000_000_000


class DirectoryStore:
    """Serves every object in *.yaml, *.yml and *.json under `path` (dot-directories skipped).

    A file with any problem is reported and keeps serving its last good objects; when a key
    is defined in two files, the lexically first path wins and the other is reported.
    An object equal to the one served before under its key is served as that same instance,
    even when its file was re-read, so caches keyed by object identity keep hitting.
    Not thread-safe: call every method from the event loop's thread, as the poller runs there.
    """

    def __init__(self, path: Path, poll_interval: float = 0.25) -> None:
        self._root = Path(path)
        self._poll_interval = poll_interval
        self._files: dict[Path, _FileState] = {}
        self._objects: tuple[IstioObject, ...] = ()
        self._served: dict[ConfigKey, IstioObject] = {}  # objects() by key
        self._owners: dict[ConfigKey, Path] = {}
        self._root_is_dir: bool | None = None  # None: never merged
        self._problems: tuple[ConfigProblem, ...] = ()
        self._subscribers = Subscribers()
        self._task: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        return self._root

    def objects(self) -> tuple[IstioObject, ...]:
        return self._objects

    def problems(self) -> tuple[ConfigProblem, ...]:
        return self._problems

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.add(callback)

    async def start(self) -> None:
        """Load the directory now, then keep watching it until stop()."""
        if self._task is not None:
            return
        self.rescan()
        self._task = asyncio.create_task(self._poll(), name=f"weft config poll {self._root}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                self.rescan()
            except Exception:  # the watcher must outlive any one bad scan
                logger.exception("scanning config directory %s failed", self._root)

    def rescan(self) -> bool:
        """Look at the directory now; return True when the served objects changed.

        Costs a stat per file when nothing changed: files are only re-read when their stamp
        (or, for recently written files, their digest) changed, and only merged when what a
        file contributes changed.
        """
        stamps = self._scan()
        root_is_dir = self._root.is_dir()
        changed = root_is_dir != self._root_is_dir
        self._root_is_dir = root_is_dir
        for path in self._files.keys() - stamps.keys():
            del self._files[path]
            changed = True
        for path, stamp in stamps.items():
            old = self._files.get(path)
            if old is None or old.stamp != stamp or _content_changed(path, old):
                state = self._load(path, stamp, old)
                if state is None:
                    changed |= self._files.pop(path, None) is not None
                    continue
                self._files[path] = state
                # Unchanged objects are the old instances, so this compares identities.
                changed |= (
                    old is None or state.objects != old.objects or state.problems != old.problems
                )
        return self._merge() if changed else False

    # --- writing ---------------------------------------------------------------------------

    def apply(self, objects: Sequence[IstioObject]) -> list[ConfigKey]:
        """Write each object to the file that defines it, or to a new file; return changed keys."""
        check_batch(objects)
        self.rescan()
        todo = [obj for obj in objects if self._served.get(obj.key) != obj]
        self._refuse_bad_files([self._owners[o.key] for o in todo if o.key in self._owners])
        try:
            for obj in todo:
                owner = self._owners.get(obj.key)
                if owner is None:
                    write_new(new_file_path(self._root, obj), obj)
                else:
                    replace_in_file(owner, obj.key, obj)
        finally:
            if todo:  # even after a failed write, serve exactly what is on disk
                self.rescan()
        return [obj.key for obj in todo]

    def delete(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]:
        """Remove each key from every file defining it (a file left empty is deleted)."""
        self.rescan()
        present = [key for key in dict.fromkeys(keys) if key in self._owners]
        plan = [(path, key) for key in present for path in self._files_defining(key)]
        self._refuse_bad_files([path for path, _ in plan])
        try:
            for path, key in plan:
                replace_in_file(path, key, None)
        finally:
            if present:
                self.rescan()
        return present

    def _files_defining(self, key: ConfigKey) -> list[Path]:
        return [p for p, s in sorted(self._files.items()) if any(o.key == key for o in s.objects)]

    def _refuse_bad_files(self, paths: Sequence[Path]) -> None:
        problems = [
            ConfigProblem(
                "cannot edit this file while it has problems",
                source=str(path),
                hint="fix or remove the problems reported for this file first",
            )
            for path in dict.fromkeys(paths)
            if self._files[path].problems
        ]
        if problems:
            raise ConfigError(problems)

    # --- reading ---------------------------------------------------------------------------

    def _scan(self) -> dict[Path, _Stamp]:
        stamps: dict[Path, _Stamp] = {}
        for dirpath, dirnames, filenames in os.walk(self._root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not is_config_file(name):
                    continue
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:  # gone since the listing, or a dangling link
                    continue
                stamps[path] = _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
        return stamps

    def _load(self, path: Path, stamp: _Stamp, old: _FileState | None) -> _FileState | None:
        """Parse one file; None if it vanished. A bad file keeps its last good objects."""
        last_good = old.objects if old is not None else ()
        source = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem = ConfigProblem(f"cannot read file: {exc.strerror or exc}", source=source)
            return _FileState(stamp, b"", last_good, (problem,))
        digest = hashlib.sha256(data).digest()
        if old is not None and old.digest == digest:  # touched, or rewritten with the same bytes
            return replace(old, stamp=stamp)
        try:
            text = data.decode("utf-8")
            objects = load_json(text, source) if is_json_path(path) else load_yaml(text, source)
        except UnicodeDecodeError:
            problem = ConfigProblem("file is not UTF-8 text", source=source, hint="save as UTF-8")
            return _FileState(stamp, digest, last_good, (problem,))
        except ConfigError as exc:
            return _FileState(stamp, digest, last_good, tuple(exc.problems))
        return _FileState(stamp, digest, tuple(self._reuse(obj) for obj in objects), ())

    def _reuse(self, obj: IstioObject) -> IstioObject:
        """The instance served now under obj's key if it is equal to obj, else obj."""
        served = self._served.get(obj.key)
        return served if served is not None and (served is obj or served == obj) else obj

    def _merge(self) -> bool:
        owners: dict[ConfigKey, Path] = {}
        winners: dict[ConfigKey, IstioObject] = {}
        problems: list[ConfigProblem] = []
        if not self._root.is_dir():
            problems.append(
                ConfigProblem(
                    f"config directory {self._root} does not exist",
                    source=str(self._root),
                    hint="create it, or point Weft at the directory holding your Istio YAML",
                )
            )
        for path in sorted(self._files, key=lambda p: p.as_posix()):
            state = self._files[path]
            problems.extend(state.problems)
            for obj in state.objects:
                if obj.key in owners:
                    problems.append(_conflict(obj, path, owners[obj.key]))
                    continue
                owners[obj.key] = path
                winners[obj.key] = self._reuse(obj)  # an equal copy may now win from another file
        objects = tuple(winners[key] for key in sorted(winners))
        self._log_new_problems(problems)
        self._owners = owners
        self._problems = tuple(problems)
        if objects == self._objects:
            return False
        self._objects = objects
        self._served = winners
        self._subscribers.notify()
        return True

    def _log_new_problems(self, problems: list[ConfigProblem]) -> None:
        before = set(self._problems)
        for problem in problems:
            if problem not in before:
                logger.warning("config problem: %s", problem)
        fixed = {p.source for p in before} - {p.source for p in problems}
        for source in sorted(s for s in fixed if s is not None):
            logger.info("config problems in %s resolved", source)


def _content_changed(path: Path, old: _FileState) -> bool:
    if time.time_ns() - old.stamp.mtime_ns > _RACY_NS:
        return False
    try:
        return hashlib.sha256(path.read_bytes()).digest() != old.digest
    except OSError:
        return True


def _conflict(obj: IstioObject, path: Path, winner: Path) -> ConfigProblem:
    return ConfigProblem(
        message=f"is also defined in {winner}, which takes precedence; this copy is ignored",
        source=str(path),
        kind=obj.kind,
        namespace=obj.metadata.namespace,
        name=obj.metadata.name,
        hint="keep one definition of each object; delete or rename one of them",
    )
