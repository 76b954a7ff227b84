"""The agent's side of local registration: register, report health, deregister."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from weft.contract.registration import (
    Heartbeat,
    HeartbeatAnswer,
    Registration,
    RegistrationAnswer,
)
from weft.controlplane.client import AdminClient, AdminRefused, NotRegistered
from weft.errors import ControlPlaneUnavailable

log = logging.getLogger("weft.agent")


class Registrar:
    """Keeps one workload registered; never fails the workload when the control plane is away."""

    def __init__(self, admin: AdminClient, registration: Registration) -> None:
        self._admin = admin
        self.registration = registration
        self._last_complaint = ""
        self.registered = False
        self.refused = False  # the control plane answered and said no: waiting will not help

    @property
    def _name(self) -> str:
        return self.registration.key

    def _complain(self, message: str) -> None:
        # Retries are frequent: say each distinct problem once, not on every attempt.
        if message != self._last_complaint:
            log.error("%s", message)
            self._last_complaint = message

    async def register(self) -> RegistrationAnswer | None:
        """Register; returns the control plane's answer (the WorkloadEntry, a probe)."""
        try:
            answer = await self._admin.register(self.registration)
        except AdminRefused as e:
            self.refused = True
            self._complain(f"registration refused ({e.status}): {e}")
            return None
        except ControlPlaneUnavailable as e:
            self._complain(f"{e}; will retry")
            return None
        self._last_complaint = ""
        if not self.registered:
            log.info("registered %s with the control plane", self._name)
        self.registered = True
        return answer

    async def report(
        self, healthy: bool, cert_root: str | None = None
    ) -> RegistrationAnswer | HeartbeatAnswer | None:
        """A heartbeat; re-registers (returning the answer) when the control plane forgot us."""
        self.registration = self.registration.model_copy(update={"healthy": healthy})
        if not self.registered:
            return await self.register()
        r = self.registration
        try:
            return await self._admin.heartbeat(
                r.namespace, r.name, Heartbeat(healthy=healthy, cert_root=cert_root)
            )
        except NotRegistered:
            self.registered = False
            return await self.register()
        except (AdminRefused, ControlPlaneUnavailable) as e:
            # The control plane is away or unhappy; proxies keep their config meanwhile.
            log.debug("heartbeat for %s not taken: %s", self._name, e)
        return None

    async def deregister(self) -> None:
        r = self.registration
        try:
            await self._admin.deregister(r.namespace, r.name)
        except (AdminRefused, ControlPlaneUnavailable) as e:
            log.warning("could not deregister %s: %s", self._name, e)
        self.registered = False

    async def close(self) -> None:
        await self._admin.close()


async def probe_tcp(port: int, timeout: float = 1.0) -> bool:
    """The app is ready when it accepts connections on its port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe_http(port: int, path: str, timeout: float = 1.0) -> bool:
    """An HTTP readiness probe: any status below 400 is ready, as in Kubernetes."""
    try:
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp,
        ):
            return resp.status < 400
    except (aiohttp.ClientError, TimeoutError):
        return False
