"""Local discovery: workloads started by `weft run` register themselves, Istio VM style.

Each registration is an auto-registered WorkloadEntry (its WorkloadGroup is the service and
version it was started as). An entry stays while its agent keeps reporting; it leaves when the
agent deregisters (workload exit), reports the app unhealthy (kept but not served), or stops
reporting for `ttl` seconds (agent killed). Entries are persisted so a restarted control plane
serves the same endpoints at once instead of an empty mesh.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from weft.registry.model import (
    EMPTY_LABELS,
    Endpoint,
    Service,
    ServicePort,
    frozen_labels,
)

log = logging.getLogger("weft.registry")

DEFAULT_TTL = 15.0


@dataclass(frozen=True, order=True)
class WorkloadPort:
    """A service port and the port the workload is reached on for it (its sidecar's inbound)."""

    service_port: int
    target_port: int
    name: str = "http"
    protocol: str = "HTTP"


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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "service": self.service,
            "address": self.address,
            "ports": [
                {
                    "servicePort": p.service_port,
                    "targetPort": p.target_port,
                    "name": p.name,
                    "protocol": p.protocol,
                }
                for p in self.ports
            ],
            "labels": dict(self.labels),
            "serviceAccount": self.service_account,
            "healthy": self.healthy,
            "group": self.group,
        }

    def to_workload_entry(self) -> dict[str, Any]:
        """This registration as the Istio WorkloadEntry it stands for."""
        annotations = {"weft.io/healthy": str(self.healthy).lower()}
        if self.group:
            annotations["istio.io/autoRegistrationGroup"] = self.group
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": annotations,
            },
            "spec": {
                "address": self.address,
                "ports": {p.name: p.target_port for p in self.ports},
                "labels": dict(self.labels),
                "serviceAccount": self.service_account,
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Workload:
        """Parse a registration; raises ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("a registration must be a JSON object")
        if not isinstance(data.get("ports", []), list) or not all(
            isinstance(p, Mapping) for p in data.get("ports", [])
        ):
            raise ValueError("'ports' must be a list of objects with servicePort and targetPort")
        if not isinstance(data.get("labels", {}), Mapping):
            raise ValueError("'labels' must be an object of string values")
        try:
            ports = tuple(
                sorted(
                    WorkloadPort(
                        service_port=_port(p["servicePort"], "servicePort"),
                        target_port=_port(p["targetPort"], "targetPort"),
                        name=str(p.get("name", "http")),
                        protocol=str(p.get("protocol", "HTTP")).upper(),
                    )
                    for p in data.get("ports", [])
                )
            )
            workload = cls(
                name=_required(data, "name"),
                namespace=str(data.get("namespace") or "default"),
                service=_required(data, "service"),
                address=str(data.get("address") or "127.0.0.1"),
                ports=ports,
                labels=frozen_labels({str(k): str(v) for k, v in data.get("labels", {}).items()}),
                service_account=str(data.get("serviceAccount") or data["service"]),
                healthy=bool(data.get("healthy", True)),
                group=str(data.get("group") or ""),
            )
        except KeyError as e:
            raise ValueError(f"registration is missing field {e.args[0]!r}") from None
        if not workload.ports:
            raise ValueError("registration has no ports: give at least one servicePort/targetPort")
        return workload


def _required(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not value:
        raise ValueError(f"registration is missing field {key!r}")
    return str(value)


def _port(value: Any, name: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{name} {port} is out of range 1-65535")
    return port


class LocalRegistry:
    """Registered workloads, their liveness, and the services and endpoints they make up."""

    def __init__(
        self,
        state_file: Path | None = None,
        ttl: float = DEFAULT_TTL,
        domain: str = "cluster.local",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state_file = state_file
        self._ttl = ttl
        self._domain = domain
        self._clock = clock
        self._workloads: dict[tuple[str, str], Workload] = {}
        self._last_seen: dict[tuple[str, str], float] = {}
        self._subscribers: list[Callable[[], None]] = []
        self._load()

    # --- changes -------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def register(self, workload: Workload) -> bool:
        key = (workload.namespace, workload.name)
        self._last_seen[key] = self._clock()
        if self._workloads.get(key) == workload:
            return False
        self._workloads[key] = workload
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
        self._workloads[key] = replace(current, healthy=healthy)
        log.info("%s/%s is now %s", namespace, name, "healthy" if healthy else "unhealthy")
        self._changed()
        return True

    def deregister(self, namespace: str, name: str) -> bool:
        key = (namespace, name)
        self._last_seen.pop(key, None)
        if self._workloads.pop(key, None) is None:
            return False
        log.info("deregistered %s/%s", namespace, name)
        self._changed()
        return True

    def expire(self) -> list[str]:
        """Remove workloads whose agent has not reported within the TTL."""
        now = self._clock()
        stale = [k for k in self._workloads if now - self._last_seen.get(k, now) > self._ttl]
        for key in stale:
            log.warning("%s/%s stopped reporting for %.0fs: removed", *key, self._ttl)
            del self._workloads[key]
            self._last_seen.pop(key, None)
        if stale:
            self._changed()
        return [f"{ns}/{name}" for ns, name in stale]

    # --- views ---------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Workload:
        """A registered workload; KeyError if there is none."""
        return self._workloads[(namespace, name)]

    def workloads(self) -> tuple[Workload, ...]:
        return tuple(self._workloads[k] for k in sorted(self._workloads))

    def services(self) -> dict[str, Service]:
        ports: dict[str, dict[int, ServicePort]] = {}
        namespaces: dict[str, tuple[str, str]] = {}
        for w in self.workloads():
            host = w.hostname(self._domain)
            namespaces[host] = (w.namespace, w.service)
            for p in w.ports:
                ports.setdefault(host, {}).setdefault(
                    p.service_port, ServicePort(p.service_port, p.name, p.protocol)
                )
        return {
            host: Service(
                hostname=host,
                namespace=namespaces[host][0],
                name=namespaces[host][1],
                ports=tuple(sorted(by_port.values())),
            )
            for host, by_port in sorted(ports.items())
        }

    def endpoints(self) -> dict[str, tuple[Endpoint, ...]]:
        found: dict[str, list[Endpoint]] = {}
        for w in self.workloads():
            host = w.hostname(self._domain)
            found.setdefault(host, []).append(
                Endpoint(
                    service=host,
                    address=w.address,
                    ports={p.service_port: p.target_port for p in w.ports},
                    labels=w.labels,
                    service_account=w.service_account,
                    namespace=w.namespace,
                    workload=w.name,
                    healthy=w.healthy,
                )
            )
        return {host: tuple(eps) for host, eps in found.items()}

    # --- persistence ---------------------------------------------------------------------
    def _changed(self) -> None:
        self._save()
        for callback in self._subscribers:
            callback()

    def _save(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([w.to_json() for w in self.workloads()], indent=1))
        os.replace(tmp, self._state_file)

    def _load(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        try:
            entries: Iterable[Mapping[str, Any]] = json.loads(self._state_file.read_text())
            if not isinstance(entries, list):
                raise ValueError("expected a list of workloads")
            now = self._clock()
            for entry in entries:
                w = Workload.from_json(entry)
                self._workloads[(w.namespace, w.name)] = w
                self._last_seen[(w.namespace, w.name)] = now
        except (OSError, ValueError, TypeError) as e:
            log.warning("ignoring unreadable registry state %s: %s", self._state_file, e)
            self._workloads.clear()
        if self._workloads:
            log.info("restored %d workloads from %s", len(self._workloads), self._state_file)
