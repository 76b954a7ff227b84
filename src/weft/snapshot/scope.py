"""Push scope: which proxies a change between two snapshots can affect.

Most changes are narrow: a VirtualService edit changes the routes of its hosts, a new instance
the endpoints of its service. A proxy that sees none of the changed hosts gets exactly the
config it had, so it is neither regenerated nor pushed to. Anything wider (services, Sidecars,
DestinationRules, security policy, mesh config) affects every proxy.

Parts are compared by identity: `build_snapshot(previous=...)` keeps every unchanged part as
the same object, so a part that is not the same object is taken as changed (never the
reverse, which would leave a proxy stale).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields

from weft.api import VirtualService
from weft.api.hosts import fqdn
from weft.snapshot.snapshot import Snapshot

# Snapshot parts whose change is scoped by host; a change to any other part affects everyone.
HOST_SCOPED = frozenset({"version", "endpoints", "virtual_services"})


@dataclass(frozen=True)
class ChangeScope:
    """The hosts a change touched, or None: it may affect every proxy; and which parts of
    the snapshot changed (of the host-scoped ones: endpoints, virtual_services)."""

    hosts: frozenset[str] | None
    parts: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return self.hosts is None

    def affects(self, visible: Collection[str]) -> bool:
        """Whether a proxy that sees the services `visible` is affected."""
        if self.hosts is None:
            return True
        small, large = (
            (self.hosts, visible) if len(self.hosts) < len(visible) else (visible, self.hosts)
        )
        return any(h in large for h in small)


EVERYTHING = ChangeScope(None)


def change_scope(before: Snapshot, after: Snapshot) -> ChangeScope:
    for f in fields(Snapshot):
        if f.name not in HOST_SCOPED and getattr(before, f.name) is not getattr(after, f.name):
            return EVERYTHING
    hosts: set[str] = set()
    parts: set[str] = set()
    if before.endpoints is not after.endpoints:
        parts.add("endpoints")
        for host in before.endpoints.keys() | after.endpoints.keys():
            if before.endpoints.get(host) is not after.endpoints.get(host):
                hosts.add(host)
    if before.virtual_services is not after.virtual_services:
        parts.add("virtual_services")
        old = {id(vs): vs for vs in before.virtual_services}
        new = {id(vs): vs for vs in after.virtual_services}
        for key in old.keys() ^ new.keys():
            touched = _hosts_of(old.get(key) or new[key])
            if touched is None:
                return EVERYTHING
            hosts |= touched
    return ChangeScope(frozenset(hosts), frozenset(parts))


def _hosts_of(vs: VirtualService) -> set[str] | None:
    """The hosts whose sidecar routes the VirtualService can change; None when it may be any
    (a wildcard host), it binds gateways (gateway proxies are not scoped by host) or it has no
    hosts (a delegate, whose roots may route any host)."""
    if any(g != "mesh" for g in vs.spec.gateways):
        return None
    if not vs.spec.hosts:
        return None  # a delegate: it changes the routes of whichever roots name it
    hosts = {fqdn(h, vs.metadata.namespace) for h in vs.spec.hosts}
    return None if any("*" in h for h in hosts) else hosts
