"""Objects left out of generation because generating with them failed.

Validation is meant to refuse every object that cannot be generated. If one still fails at
run time (a bug), only that object is left out, wherever it is used, and it is reported:
logged once, listed by `weft proxy-status`, and counted in `weft_generation_problems`. Every
other object and every proxy keeps being served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from weft.api import IstioObject
from weft.snapshot.snapshot import Snapshot

log = logging.getLogger("weft.xds")


@dataclass(frozen=True)
class LeftOut:
    """An object generation leaves out, and why."""

    kind: str
    namespace: str
    name: str
    error: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.namespace}/{self.name} is left out of generated config: "
            f"{self.error} (fix or delete it; everything else is served)"
        )


class LeftOutObjects:
    """What generation left out, by object; an entry holds while its object is in use."""

    def __init__(self) -> None:
        self._found: dict[int, tuple[IstioObject, LeftOut]] = {}

    def record(self, obj: IstioObject, error: BaseException) -> None:
        if id(obj) in self._found:
            return
        meta = obj.metadata
        entry = LeftOut(obj.kind, meta.namespace, meta.name, f"{type(error).__name__}: {error}")
        self._found[id(obj)] = (obj, entry)
        log.error("%s", entry, exc_info=error)

    def current(self, snap: Snapshot) -> list[LeftOut]:
        """Those whose object is still in `snap` (the very object: an edit is a new one);
        the others are forgotten."""
        present = {id(o) for o in _objects(snap)}
        self._found = {k: v for k, v in self._found.items() if k in present}
        return sorted((e for _, e in self._found.values()), key=lambda e: str(e))


def _objects(snap: Snapshot) -> Iterable[IstioObject]:
    yield from snap.virtual_services
    yield from snap.destination_rules
    yield from snap.sidecars
    yield from snap.peer_authentications
    yield from snap.authorization_policies
    yield from snap.request_authentications
