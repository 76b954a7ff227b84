"""The control plane's parts, seen through the admin API's interfaces (admin_backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import json_format, symbol_database

from weft.ca.errors import CaError
from weft.config.store import ConfigStore
from weft.contract.registration import (
    Heartbeat,
    HeartbeatAnswer,
    Registration,
    RegistrationAnswer,
    RootRotation,
)
from weft.controlplane.admin_backend import (
    CaControl,
    ConfigAccess,
    Conflict,
    NotFound,
    Refused,
    Registrations,
    XdsStatus,
)
from weft.controlplane.citadel import Citadel
from weft.registry.groups import find_group, from_group, group_probe
from weft.registry.local import LocalRegistry, Workload
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds import types
from weft.xds.server import AdsServer


class LocalRegistrations:
    """Registration against the local registry, WorkloadGroups from the config store, and
    credentials from the CA."""

    def __init__(self, registry: LocalRegistry, store: ConfigStore, citadel: Citadel) -> None:
        self._registry = registry
        self._store = store
        self._citadel = citadel

    def register(self, registration: Registration) -> RegistrationAnswer:
        workload = Workload.from_registration(registration)
        group = None
        if registration.group:
            group = find_group(self._store.objects(), registration.namespace, registration.group)
            if group is None:
                raise Refused(
                    f"WorkloadGroup {registration.namespace}/{registration.group} does not "
                    "exist: apply it first, or register without a group"
                )
            workload = from_group(workload, group, registration.service_account is not None)
        self._registry.register(workload)
        return RegistrationAnswer(
            registered=f"{workload.namespace}/{workload.name}",
            entry=workload.to_workload_entry(),
            probe=group_probe(group),
            credentials=self._citadel.credentials_for(workload),
        )

    def heartbeat(self, namespace: str, name: str, beat: Heartbeat) -> HeartbeatAnswer:
        try:
            self._registry.report(namespace, name, beat.healthy)
        except KeyError:
            raise NotFound(
                f"workload {namespace}/{name} is not registered: register it again"
            ) from None
        if beat.cert_root:
            self._citadel.cert_roots[(namespace, name)] = beat.cert_root
        workload = self._registry.get(namespace, name)
        return HeartbeatAnswer(credentials=self._citadel.credentials_for(workload))

    def deregister(self, namespace: str, name: str) -> bool:
        self._citadel.cert_roots.pop((namespace, name), None)
        return self._registry.deregister(namespace, name)

    def list(self) -> Sequence[Workload]:
        return self._registry.workloads()


class AdsStatus:
    """Sync status and generated config per connected proxy, from the ADS server."""

    def __init__(self, ads: AdsServer, rebuild_pending: Callable[[], bool]) -> None:
        self._ads = ads
        self._pending = rebuild_pending

    def sync_status(self) -> dict[str, Any]:
        """Every connected proxy and, per xDS type, whether it has what we last sent."""
        ads = self._ads
        out = []
        for conn in sorted(ads.connections.values(), key=lambda c: c.proxy.id):
            status = conn.status()
            latest = ads.config_for(conn.proxy)
            for type_url in types.PUSH_ORDER:
                entry = status["types"][types.short_name(type_url)]  # type: ignore[index]
                if entry["status"] == "SYNCED" and entry["sent"] != latest[type_url].version:
                    entry["status"] = "STALE"
            out.append(status)
        return {
            "snapshot": ads.snapshot.version,
            "pending": self._pending(),
            "proxies": out,
            # Objects generation leaves out because generating with them failed.
            "left_out": [str(e) for e in ads.left_out()],
        }

    def config_dump(self, proxy: str) -> dict[str, Any]:
        """The config the control plane generates for one proxy, as Envoy-style JSON."""
        ads = self._ads
        conn = ads.find(proxy)
        if conn is None:
            names = ", ".join(sorted(c.proxy.id for c in ads.connections.values())) or "none"
            raise NotFound(f"no connected proxy matches {proxy!r} ({names})")
        config = ads.config_for(conn.proxy)
        dump: dict[str, Any] = {"proxy": conn.proxy.id, "adminPort": conn.proxy.admin_port}
        for type_url in types.PUSH_ORDER:
            resources = config[type_url]
            dump[types.short_name(type_url)] = {
                "version": resources.version,
                "resources": [
                    json_format.MessageToDict(_unpack(any_)) for any_ in resources.items.values()
                ],
            }
        return dump


def _unpack(any_: Any) -> Any:
    name = any_.type_url.rsplit("/", 1)[-1]
    msg = symbol_database.Default().GetSymbol(name)()
    any_.Unpack(msg)
    return msg


class CitadelControl:
    def __init__(self, citadel: Citadel) -> None:
        self._citadel = citadel

    def status(self) -> dict[str, Any]:
        return self._citadel.status()

    def rotate_root(self, rotation: RootRotation) -> dict[str, Any]:
        try:
            return self._citadel.rotate_root(rotation.step, force=rotation.force)
        except CaError as e:
            raise Conflict(str(e)) from None


class ControlPlaneBackend:
    """What the admin API may use of a running control plane, and nothing more."""

    def __init__(
        self,
        store: ConfigStore,
        registry: LocalRegistry,
        citadel: Citadel,
        ads: AdsServer,
        metrics: ControlPlaneMetrics,
        ready: asyncio.Event,
        rebuild_pending: Callable[[], bool],
    ) -> None:
        self._store = store
        self._registrations = LocalRegistrations(registry, store, citadel)
        self._xds = AdsStatus(ads, rebuild_pending)
        self._ca = CitadelControl(citadel)
        self._metrics = metrics
        self._ready = ready

    @property
    def store(self) -> ConfigAccess:
        return self._store

    @property
    def registry(self) -> Registrations:
        return self._registrations

    @property
    def xds(self) -> XdsStatus:
        return self._xds

    @property
    def ca(self) -> CaControl:
        return self._ca

    def ready(self) -> bool:
        return self._ready.is_set()

    def metrics(self) -> bytes:
        return self._metrics.render()
