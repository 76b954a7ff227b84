"""Reading a config directory into a view: what each file defines, merged into what is served.

A scan is a pure function of the directory and the view before it, so it can run in a worker
thread while the event loop goes on serving the view before it. Its cost is a stat per file,
plus a read and parse of each file that changed, plus one pass over every object to merge:
linear in the size of the directory, whatever changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from weft.api import ConfigKey, IstioObject
from weft.api.loader import is_json_path, load_json, load_yaml
from weft.config.files import Written, is_config_file
from weft.errors import ConfigError, ConfigProblem


class Stamp(NamedTuple):
    """Enough to notice any change: editors that rename-replace change the inode."""

    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True)
class FileState:
    stamp: Stamp
    digest: bytes  # of the text last read, to catch edits the stamp cannot show
    objects: tuple[IstioObject, ...]  # the last good contents; kept while the file is bad
    problems: tuple[ConfigProblem, ...]


@dataclass(frozen=True)
class View:
    """A directory as the store serves it. Never mutated: a scan makes a new one."""

    files: Mapping[Path, FileState] = field(default_factory=dict)
    root_is_dir: bool | None = None  # None: never scanned
    objects: tuple[IstioObject, ...] = ()  # sorted by key
    served: Mapping[ConfigKey, IstioObject] = field(default_factory=dict)  # objects by key
    # Every file defining a key, the one served first: edits and deletes find their files here.
    defined_in: Mapping[ConfigKey, tuple[Path, ...]] = field(default_factory=dict)
    problems: tuple[ConfigProblem, ...] = ()


# File timestamps come from a coarse kernel clock (often a few ms): two same-size writes
# within one tick leave an identical stamp. Files modified this recently are re-read.
_RACY_NS = 2_000_000_000


def scan(root: Path, before: View, written: Sequence[Written] = ()) -> View:
    """The view of `root` now. Files whose stamp (or, when recently written, digest) did not
    change keep their state; objects equal to ones served before are those very instances.

    Files this process just `written` are not read back while their stamp is the one their
    write left.
    """
    known = _written_states(written, before.served)
    stamps = _stamps(root)
    root_is_dir = root.is_dir()
    changed = root_is_dir != before.root_is_dir
    files = dict(before.files)
    for path in files.keys() - stamps.keys():
        del files[path]
        changed = True
    for path, stamp in stamps.items():
        old = files.get(path)
        state = known.get(path)
        if state is None or state.stamp != stamp:
            if old is not None and old.stamp == stamp and not _content_changed(path, old):
                continue
            state = _load(path, stamp, old, before.served)
        if state is None:
            changed |= files.pop(path, None) is not None
            continue
        files[path] = state
        # Unchanged objects are the old instances, so this compares identities.
        changed |= old is None or state.objects != old.objects or state.problems != old.problems
    if not changed:
        return replace(before, files=files)  # only stamps moved (files touched)
    return _merge(root, files, root_is_dir, before)


def _written_states(
    written: Sequence[Written], served: Mapping[ConfigKey, IstioObject]
) -> dict[Path, FileState]:
    return {
        w.change.path: FileState(
            Stamp(w.stat.st_mtime_ns, w.stat.st_size, w.stat.st_ino),
            hashlib.sha256(w.change.data).digest(),
            tuple(_reuse(obj, served) for obj in w.change.objects),
            (),
        )
        for w in written
        if w.change.data is not None and w.stat is not None
    }


def _stamps(root: Path) -> dict[Path, Stamp]:
    """Every config file under `root` (not in dot-directories, nor through linked ones)."""
    stamps: dict[Path, Stamp] = {}
    directories = [str(root)]
    while directories:
        try:
            entries = os.scandir(directories.pop())
        except OSError:  # gone, or not a directory
            continue
        with entries:
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir():
                        if not name.startswith(".") and not entry.is_symlink():
                            directories.append(entry.path)
                        continue
                    if not is_config_file(name):
                        continue
                    st = entry.stat()
                except OSError:  # gone since the listing, or a dangling link
                    continue
                stamps[Path(entry.path)] = Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
    return stamps


def _content_changed(path: Path, old: FileState) -> bool:
    if time.time_ns() - old.stamp.mtime_ns > _RACY_NS:
        return False
    try:
        return hashlib.sha256(path.read_bytes()).digest() != old.digest
    except OSError:
        return True


def _load(
    path: Path, stamp: Stamp, old: FileState | None, served: Mapping[ConfigKey, IstioObject]
) -> FileState | None:
    """Parse one file; None if it vanished. A bad file keeps its last good objects."""
    last_good = old.objects if old is not None else ()
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        problem = ConfigProblem(f"cannot read file: {exc.strerror or exc}", source=source)
        return FileState(stamp, b"", last_good, (problem,))
    digest = hashlib.sha256(data).digest()
    if old is not None and old.digest == digest:  # touched, or rewritten with the same bytes
        return replace(old, stamp=stamp)
    try:
        text = data.decode("utf-8")
        objects = load_json(text, source) if is_json_path(path) else load_yaml(text, source)
    except UnicodeDecodeError:
        problem = ConfigProblem("file is not UTF-8 text", source=source, hint="save as UTF-8")
        return FileState(stamp, digest, last_good, (problem,))
    except ConfigError as exc:
        return FileState(stamp, digest, last_good, tuple(exc.problems))
    return FileState(stamp, digest, tuple(_reuse(obj, served) for obj in objects), ())


def _reuse(obj: IstioObject, served: Mapping[ConfigKey, IstioObject]) -> IstioObject:
    """The instance served under obj's key if it is equal to obj, else obj."""
    current = served.get(obj.key)
    return current if current is not None and (current is obj or current == obj) else obj


def _merge(root: Path, files: dict[Path, FileState], root_is_dir: bool, before: View) -> View:
    defined_in: dict[ConfigKey, list[Path]] = {}
    winners: dict[ConfigKey, IstioObject] = {}
    problems: list[ConfigProblem] = []
    if not root_is_dir:
        problems.append(
            ConfigProblem(
                f"config directory {root} does not exist",
                source=str(root),
                hint="create it, or point Weft at the directory holding your Istio YAML",
            )
        )
    for path in sorted(files, key=lambda p: p.as_posix()):
        state = files[path]
        problems.extend(state.problems)
        for obj in state.objects:
            paths = defined_in.setdefault(obj.key, [])
            paths.append(path)
            if len(paths) > 1:  # the lexically first path wins
                problems.append(_conflict(obj, path, paths[0]))
                continue
            winners[obj.key] = _reuse(obj, before.served)  # an equal copy may win elsewhere
    objects = tuple(winners[key] for key in sorted(winners))
    served: Mapping[ConfigKey, IstioObject] = winners
    if objects == before.objects:
        objects, served = before.objects, before.served
    found = tuple(problems)
    return View(
        files=files,
        root_is_dir=root_is_dir,
        objects=objects,
        served=served,
        defined_in={key: tuple(paths) for key, paths in defined_in.items()},
        problems=before.problems if found == before.problems else found,
    )


def _conflict(obj: IstioObject, path: Path, winner: Path) -> ConfigProblem:
    return ConfigProblem(
        message=f"is also defined in {winner}, which takes precedence; this copy is ignored",
        source=str(path),
        kind=obj.kind,
        namespace=obj.metadata.namespace,
        name=obj.metadata.name,
        hint="keep one definition of each object; delete or rename one of them",
    )
