"""Exactly what the admin API needs from the control plane, and the refusals it may answer.

The admin handlers see these interfaces only: they cannot reach into the snapshot, the xDS
server or the registry beyond them, and a test can serve the API from any implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from weft.api import ConfigKey, IstioObject
from weft.contract.registration import (
    Heartbeat,
    HeartbeatAnswer,
    Registration,
    RegistrationAnswer,
    RootRotation,
)
from weft.errors import ConfigProblem, WeftError
from weft.registry.local import Workload


class NotFound(WeftError):
    """What the request names does not exist (404)."""


class Refused(WeftError):
    """A well-formed request the control plane will not carry out as asked (400)."""


class Conflict(WeftError):
    """The request cannot be carried out in the current state (409)."""


class ConfigAccess(Protocol):
    """The config store, as `weft apply`, `weft delete` and `GET /v1/config` use it."""

    def apply(self, objects: Sequence[IstioObject]) -> list[ConfigKey]: ...

    def delete(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]: ...

    async def apply_async(self, objects: Sequence[IstioObject]) -> list[ConfigKey]: ...

    async def delete_async(self, keys: Sequence[ConfigKey]) -> list[ConfigKey]: ...

    def objects(self) -> tuple[IstioObject, ...]: ...

    def problems(self) -> tuple[ConfigProblem, ...]: ...


class Registrations(Protocol):
    """Workloads registering themselves, reporting health, and leaving."""

    def register(self, registration: Registration) -> RegistrationAnswer:
        """Refused when the WorkloadGroup it names does not exist."""
        ...

    def heartbeat(self, namespace: str, name: str, beat: Heartbeat) -> HeartbeatAnswer:
        """NotFound when the workload is not registered (it should register again)."""
        ...

    def deregister(self, namespace: str, name: str) -> bool: ...

    def list(self) -> Sequence[Workload]: ...


class XdsStatus(Protocol):
    """What the xDS server tells `weft proxy-status` and `weft proxy-config`."""

    def sync_status(self) -> dict[str, Any]: ...

    def config_dump(self, proxy: str) -> dict[str, Any]:
        """NotFound unless exactly one connected proxy matches `proxy`."""
        ...


class CaControl(Protocol):
    def status(self) -> dict[str, Any]: ...

    def rotate_root(self, rotation: RootRotation) -> dict[str, Any]:
        """Conflict when the step cannot be taken now."""
        ...


class AdminBackend(Protocol):
    @property
    def store(self) -> ConfigAccess: ...

    @property
    def registry(self) -> Registrations: ...

    @property
    def xds(self) -> XdsStatus: ...

    @property
    def ca(self) -> CaControl: ...

    def ready(self) -> bool: ...

    def metrics(self) -> bytes:
        """The control plane's metrics in Prometheus' text format."""
        ...
