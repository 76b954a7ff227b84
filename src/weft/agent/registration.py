"""The agent's side of local registration: register, report health, deregister."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

log = logging.getLogger("weft.agent")


class Registrar:
    """Talks to the control plane's admin API; never fails the workload when it is away."""

    def __init__(self, admin_host: str, admin_port: int, registration: dict[str, Any]) -> None:
        self._base = f"http://{admin_host}:{admin_port}"
        self._registration = registration
        self._name = f"{registration['namespace']}/{registration['name']}"
        self._client: aiohttp.ClientSession | None = None
        self._last_complaint = ""
        self.registered = False
        self.refused = False  # the control plane answered and said no: waiting will not help

    def _complain(self, message: str) -> None:
        # Retries are frequent: say each distinct problem once, not on every attempt.
        if message != self._last_complaint:
            log.error("%s", message)
            self._last_complaint = message

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            # trust_env=False: the agent's environment may point HTTP_PROXY at its sidecar.
            self._client = aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=3)
            )
        return self._client

    async def register(self) -> dict[str, Any] | None:
        """Register; returns the control plane's answer (the WorkloadEntry, a probe)."""
        try:
            async with self._session.post(
                f"{self._base}/v1/workloads", json=self._registration
            ) as resp:
                if resp.status != 200:
                    self.refused = resp.status < 500
                    self._complain(f"registration refused ({resp.status}): {await resp.text()}")
                    return None
                answer: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as e:
            self._complain(f"control plane unreachable at {self._base}, will retry: {e}")
            return None
        self._last_complaint = ""
        if not self.registered:
            log.info("registered %s with the control plane", self._name)
        self.registered = True
        return answer

    async def report(
        self, healthy: bool, extra: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A heartbeat; re-registers (returning the answer) when the control plane forgot us."""
        self._registration["healthy"] = healthy
        if not self.registered:
            return await self.register()
        try:
            async with self._session.put(
                f"{self._base}/v1/workloads/{self._name}/health",
                json={"healthy": healthy, **(extra or {})},
            ) as resp:
                if resp.status == 404:
                    self.registered = False
                    return await self.register()
                if resp.status == 200:
                    answer: dict[str, Any] = await resp.json()
                    return answer
        except (aiohttp.ClientError, TimeoutError):
            pass  # the control plane is away; proxies keep their config meanwhile
        return None

    async def deregister(self) -> None:
        try:
            async with self._session.delete(f"{self._base}/v1/workloads/{self._name}"):
                pass
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("could not deregister %s: %s", self._name, e)
        self.registered = False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


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
