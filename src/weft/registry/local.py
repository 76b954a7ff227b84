"""Local discovery: workloads started by `weft run` register themselves, Istio VM style.

Each registration is an auto-registered WorkloadEntry (its WorkloadGroup is the service and
version it was started as). An entry stays while its agent keeps reporting; it leaves when the
agent deregisters (workload exit), reports the app unhealthy (kept but not served), or stops
reporting for `ttl` seconds (agent killed). Entries are persisted so a restarted control plane
serves the same endpoints at once instead of an empty mesh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from weft.api.meta import ObjectMeta
from weft.api.protocol import Protocol
from weft.api.workload import WorkloadEntry, WorkloadEntrySpec
from weft.contract.registration import Registration, RegistrationPort
from weft.contract.wire import parse_message
from weft.registry.model import (
    EMPTY_LABELS,
    Endpoint,
    Service,
    ServicePort,
    frozen_labels,
)
from weft.registry.statefile import StateFile

log = logging.getLogger("weft.registry")

DEFAULT_TTL = 15.0


@dataclass(frozen=True, order=True)
class WorkloadPort:
    """A service port and the port the workload is reached on for it (its sidecar's inbound)."""

    service_port: int
    target_port: int
    name: str = "http"
    protocol: Protocol = Protocol.HTTP

    def __post_init__(self) -> None:
        # Callers outside the type checker may still say "TCP"; inside it is the model.
        object.__setattr__(self, "protocol", Protocol.of(self.protocol))


@dataclass(frozen=True)
class Workload:
    """One auto-registered workload instance (an Istio WorkloadEntry)."""

    name: str
    namespace: str
    service: str
    address: str
    ports: tuple[WorkloadPort, ...]
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = "default"
    healthy: bool = True
    group: str = ""  # the WorkloadGroup it was registered from, if any

    def hostname(self, domain: str = "cluster.local") -> str:
        return f"{self.service}.{self.namespace}.svc.{domain}"

    def to_registration(self) -> Registration:
        """This workload as the registration that makes it (also its form in the state file)."""
        # Built from a workload already valid (or made by code): no second validation.
        return Registration.model_construct(
            name=self.name,
            namespace=self.namespace,
            service=self.service,
            address=self.address,
            ports=[
                RegistrationPort.model_construct(
                    service_port=p.service_port,
                    target_port=p.target_port,
                    name=p.name,
                    protocol=p.protocol.value,  # type: ignore[arg-type]  # kept as text here
                )
                for p in self.ports
            ],
            labels=dict(self.labels),
            service_account=self.service_account,
            healthy=self.healthy,
            group=self.group or None,
        )

    @classmethod
    def from_registration(cls, registration: Registration) -> Workload:
        r = registration
        return cls(
            name=r.name,
            namespace=r.namespace,
            service=r.service,
            address=r.address,
            ports=tuple(
                sorted(
                    WorkloadPort(p.service_port, p.target_port, p.name, Protocol.parse(p.protocol))
                    for p in r.ports
                )
            ),
            labels=frozen_labels(r.labels),
            service_account=r.service_account or r.service,
            healthy=r.healthy,
            group=r.group or "",
        )

    def to_json(self) -> dict[str, Any]:
        return self.to_registration().to_wire()

    def to_workload_entry(self) -> WorkloadEntry:
        """This registration as the Istio WorkloadEntry it stands for."""
        annotations = {"weft.io/healthy": str(self.healthy).lower()}
        if self.group:
            annotations["istio.io/autoRegistrationGroup"] = self.group
        return WorkloadEntry(
            metadata=ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels=dict(self.labels),
                annotations=annotations,
            ),
            spec=WorkloadEntrySpec(
                address=self.address,
                ports={p.name: p.target_port for p in self.ports},
                labels=dict(self.labels),
                service_account=self.service_account,
            ),
        )

    @classmethod
    def from_json(cls, data: Any) -> Workload:
        """Parse a registration; MessageError (a ValueError) naming each bad field."""
        return cls.from_registration(parse_message(Registration, data, "registration"))


_T = TypeVar("_T")


def _refreshed(
    current: dict[str, _T], stale: set[str], build: Callable[[str], _T | None]
) -> dict[str, _T]:
    """`current` with each stale host rebuilt (None: gone), emptying `stale`. A value equal
    to the one before stays the one before, and with no value changed, so does the dict."""
    updated = dict(current)
    changed = added = False
    for host in stale:
        old = current.get(host)
        value = build(host)
        if value is None:
            changed |= updated.pop(host, None) is not None
        elif old is None or old != value:
            updated[host] = value
            changed, added = True, added or old is None
    stale.clear()
    if not changed:
        return current
    return dict(sorted(updated.items())) if added else updated


_Key = tuple[str, str]  # (namespace, name)


class LocalRegistry:
    """Registered workloads, their liveness, and the services and endpoints they make up.

    Views keep identity, so caches keyed by object identity hit for all a change left alone:
    - endpoints()[host] is the very tuple of the previous call unless a workload of `host` was
      registered, changed, reported a health change, deregistered or expired since; in a new
      tuple, the Endpoint of each unchanged workload is still the same instance;
    - services()[host] is the previous Service instance as long as it is equal to it (health
      changes and instances that add no new port never replace it);
    - each returns the same dict object as its previous call when none of its values changed.
    The returned dicts are shared: callers must not mutate them.

    With `save_interval` > 0, state file writes are coalesced: the first change after a quiet
    interval is written at once, later ones when a change or expire() finds the interval
    over, or by flush(), which the owner must call before exiting. A failed write is logged
    and retried the same way; the change is served regardless.
    """

    def __init__(
        self,
        state_file: Path | None = None,
        ttl: float = DEFAULT_TTL,
        domain: str = "cluster.local",
        clock: Callable[[], float] = time.monotonic,
        save_interval: float = 0.0,
    ) -> None:
        self._state = StateFile(state_file, save_interval, clock) if state_file else None
        self._ttl = ttl
        self._domain = domain
        self._clock = clock
        self._workloads: dict[_Key, Workload] = {}
        self._last_seen: dict[_Key, float] = {}
        self._subscribers: list[Callable[[], None]] = []
        self._by_host: dict[str, dict[_Key, Workload]] = {}
        self._endpoint_of: dict[_Key, Endpoint] = {}  # built on demand, dropped on change
        self._endpoints: dict[str, tuple[Endpoint, ...]] = {}  # the last endpoints()
        self._services: dict[str, Service] = {}  # the last services()
        self._stale_endpoints: set[str] = set()  # hosts changed since the last endpoints()
        self._stale_services: set[str] = set()  # ... and since the last services()
        self._load()

    # --- changes -------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def register(self, workload: Workload) -> bool:
        key = (workload.namespace, workload.name)
        self._last_seen[key] = self._clock()
        if self._workloads.get(key) == workload:
            return False
        self._put(key, workload)
        log.info("registered %s/%s (%s)", workload.namespace, workload.name, workload.service)
        self._changed()
        return True

    def report(self, namespace: str, name: str, healthy: bool) -> bool:
        """A heartbeat with the app's health; KeyError if the workload is not registered."""
        key = (namespace, name)
        current = self._workloads[key]
        self._last_seen[key] = self._clock()
        if current.healthy == healthy:
            return False
        self._put(key, replace(current, healthy=healthy))
        log.info("%s/%s is now %s", namespace, name, "healthy" if healthy else "unhealthy")
        self._changed()
        return True

    def deregister(self, namespace: str, name: str) -> bool:
        key = (namespace, name)
        self._last_seen.pop(key, None)
        if key not in self._workloads:
            return False
        self._put(key, None)
        log.info("deregistered %s/%s", namespace, name)
        self._changed()
        return True

    def expire(self) -> list[str]:
        """Remove workloads whose agent has not reported within the TTL.

        Also writes state held back by `save_interval` once it is due, so calling this
        periodically bounds how far the state file can lag.
        """
        now = self._clock()
        stale = [k for k in self._workloads if now - self._last_seen.get(k, now) > self._ttl]
        for key in stale:
            log.warning("%s/%s stopped reporting for %.0fs: removed", *key, self._ttl)
            self._put(key, None)
            self._last_seen.pop(key, None)
        if stale:
            self._changed()
        elif self._state is not None:
            self._state.save_if_due()  # a change held back by save_interval
        return [f"{ns}/{name}" for ns, name in stale]

    def flush(self) -> None:
        """Write any change still held back by `save_interval`; OSError if it cannot."""
        if self._state is not None:
            self._state.flush()

    # --- views ---------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Workload:
        """A registered workload; KeyError if there is none."""
        return self._workloads[(namespace, name)]

    def workloads(self) -> tuple[Workload, ...]:
        return tuple(self._workloads[k] for k in sorted(self._workloads))

    def services(self) -> dict[str, Service]:
        """Every service by hostname, sorted; identity-preserving (see the class docstring)."""
        if self._stale_services:
            self._services = _refreshed(self._services, self._stale_services, self._service_of)
        return self._services

    def endpoints(self) -> dict[str, tuple[Endpoint, ...]]:
        """Every host's endpoints, sorted by workload; identity-preserving (see the class)."""
        if self._stale_endpoints:
            self._endpoints = _refreshed(self._endpoints, self._stale_endpoints, self._endpoints_of)
        return self._endpoints

    def _service_of(self, host: str) -> Service | None:
        members = self._by_host.get(host)
        return _service(host, members) if members else None

    def _endpoints_of(self, host: str) -> tuple[Endpoint, ...] | None:
        members = self._by_host.get(host)
        if not members:
            return None
        return tuple(self._endpoint(key, host, w) for key, w in sorted(members.items()))

    def _endpoint(self, key: _Key, host: str, w: Workload) -> Endpoint:
        ep = self._endpoint_of.get(key)
        if ep is None:
            ep = self._endpoint_of[key] = Endpoint(
                service=host,
                address=w.address,
                ports={p.service_port: p.target_port for p in w.ports},
                labels=w.labels,
                service_account=w.service_account,
                namespace=w.namespace,
                workload=w.name,
                healthy=w.healthy,
            )
        return ep

    # --- bookkeeping and persistence -----------------------------------------------------
    def _put(self, key: _Key, workload: Workload | None) -> None:
        """Replace (or with None remove) one workload, marking the hosts it leaves or joins."""
        old = self._workloads.pop(key, None)
        if old is not None:
            host = old.hostname(self._domain)
            members = self._by_host[host]
            del members[key]
            if not members:
                del self._by_host[host]
            self._stale(host)
        self._endpoint_of.pop(key, None)
        if workload is not None:
            self._workloads[key] = workload
            host = workload.hostname(self._domain)
            self._by_host.setdefault(host, {})[key] = workload
            self._stale(host)
        if self._state is not None:
            self._state.put(key, workload.to_json() if workload is not None else None)

    def _stale(self, host: str) -> None:
        self._stale_endpoints.add(host)
        self._stale_services.add(host)

    def _changed(self) -> None:
        if self._state is not None:
            self._state.save_if_due()  # once per change, however many workloads it touched
        for callback in self._subscribers:
            callback()

    def _load(self) -> None:
        if self._state is None:
            return
        try:
            entries = self._state.read()
            if not isinstance(entries, list):
                raise ValueError("expected a list of workloads")
            restored = [Workload.from_json(entry) for entry in entries]
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring unreadable registry state %s: %s", self._state.path, e)
            return
        now = self._clock()
        for w in restored:
            key = (w.namespace, w.name)
            self._workloads[key] = w
            self._by_host.setdefault(w.hostname(self._domain), {})[key] = w
            self._stale(w.hostname(self._domain))
            self._last_seen[key] = now
            self._state.restore(key, w.to_json())
        if self._workloads:
            log.info("restored %d workloads from %s", len(self._workloads), self._state.path)


def _service(host: str, members: Mapping[_Key, Workload]) -> Service:
    """A host's service: the union of its workloads' ports, the first to name a port wins."""
    workloads = [w for _, w in sorted(members.items())]
    ports: dict[int, ServicePort] = {}
    for w in workloads:
        for p in w.ports:
            ports.setdefault(p.service_port, ServicePort(p.service_port, p.name, p.protocol))
    return Service(
        hostname=host,
        namespace=workloads[-1].namespace,
        name=workloads[-1].service,
        ports=tuple(sorted(ports.values())),
    )
