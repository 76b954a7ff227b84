"""The control plane's admin API from the other side: the one client the CLI, `weft run`'s
agent and the local mesh all use."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from weft.contract.registration import (
    Heartbeat,
    HeartbeatAnswer,
    Registration,
    RegistrationAnswer,
    RootRotation,
)
from weft.contract.wire import MessageError, parse_message
from weft.controlplane.address import admin_address
from weft.errors import ControlPlaneUnavailable, WeftError

M = TypeVar("M", Registration, RegistrationAnswer, HeartbeatAnswer)


class AdminRefused(WeftError):
    """The control plane answered and said no (4xx): asking again will not help."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


class NotRegistered(AdminRefused):
    """A heartbeat for a workload the control plane does not know (it expired, or the
    control plane lost its state): register again."""


class AdminClient:
    """One session to the admin API; errors are ControlPlaneUnavailable (not reached, or it
    failed: try again later) or AdminRefused (it said no, and why)."""

    def __init__(
        self, host: str | None = None, port: int | None = None, timeout: float = 10.0
    ) -> None:
        if host is None or port is None:
            default_host, default_port = admin_address()
            host, port = host or default_host, port or default_port
        self.host, self.port = host, port
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- config --------------------------------------------------------------------------
    async def apply(self, text: str, source: str, delete: bool = False) -> dict[str, Any]:
        """Apply (or delete) the objects of one YAML text; AdminRefused lists each problem."""
        query = f"?source={quote(source)}" + ("&delete=true" if delete else "")
        data: dict[str, Any] = await self._call(
            "POST", "/v1/config" + query, data=text.encode(), content_type="application/yaml"
        )
        return data

    async def config_status(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/v1/config")
        return data

    # --- workloads -----------------------------------------------------------------------
    async def register(self, registration: Registration) -> RegistrationAnswer:
        answer = await self._call("POST", "/v1/workloads", json=registration.to_wire())
        return self._read(RegistrationAnswer, answer, "registration answer")

    async def heartbeat(self, namespace: str, name: str, beat: Heartbeat) -> HeartbeatAnswer:
        """NotRegistered when the control plane does not know the workload."""
        try:
            answer = await self._call("PUT", _workload(namespace, name) + "/health", beat.to_wire())
        except AdminRefused as e:
            if e.status == 404:
                raise NotRegistered(e.status, str(e)) from None
            raise
        return self._read(HeartbeatAnswer, answer, "heartbeat answer")

    async def deregister(self, namespace: str, name: str) -> bool:
        answer = await self._call("DELETE", _workload(namespace, name))
        return bool(answer.get("removed"))

    async def workloads(self) -> list[Registration]:
        answer = await self._call("GET", "/v1/workloads")
        return [self._read(Registration, item, "registered workload") for item in answer]

    async def workload_entries(self) -> list[dict[str, Any]]:
        """Every registered workload as the Istio WorkloadEntry it stands for."""
        data: list[dict[str, Any]] = await self._call("GET", "/v1/workloads?format=workloadentry")
        return data

    # --- status and debug ----------------------------------------------------------------
    async def ready(self) -> bool:
        """Whether the control plane answers and has served its first snapshot."""
        try:
            return bool((await self._call("GET", "/ready"))["ready"])
        except (ControlPlaneUnavailable, AdminRefused, KeyError, TypeError):
            return False

    async def syncz(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/debug/syncz")
        return data

    async def config_dump(self, proxy: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", f"/debug/config_dump?proxy={quote(proxy)}")
        return data

    async def ca_status(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/v1/ca")
        return data

    async def ca_rotate(self, step: str, force: bool = False) -> dict[str, Any]:
        body = RootRotation.model_validate({"step": step, "force": force}).to_wire()
        data: dict[str, Any] = await self._call("POST", "/v1/ca/rotate", body)
        return data

    # --- transport -----------------------------------------------------------------------
    def _read(self, model: type[M], data: Any, what: str) -> M:
        try:
            return parse_message(model, data, what)
        except MessageError as e:
            raise ControlPlaneUnavailable(
                f"the control plane at {self.base} answered something this version of weft "
                f"cannot read ({e}); are both the same version?"
            ) from None

    async def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        if self._session is None:
            # trust_env=False: a workload's environment points HTTP_PROXY at its own sidecar.
            self._session = aiohttp.ClientSession(trust_env=False, timeout=self._timeout)
        headers = {"Content-Type": content_type} if content_type else None
        try:
            async with self._session.request(
                method, self.base + path, json=json, data=data, headers=headers
            ) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {"error": (await resp.text())[:500]}
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            reason = str(e) or "timed out"
            raise ControlPlaneUnavailable(
                f"cannot reach the control plane admin API at {self.base} ({reason}); "
                "start it with `weft control-plane --config-dir DIR` or point "
                "WEFT_ADMIN=HOST:PORT at it"
            ) from None
        if status < 400:
            return body
        error = body.get("error", str(body)) if isinstance(body, dict) else str(body)
        if status < 500:
            problems = body.get("problems") if isinstance(body, dict) else None
            raise AdminRefused(status, str(error), [str(p) for p in problems or []])
        raise ControlPlaneUnavailable(f"the control plane at {self.base} failed: {error}")


def _workload(namespace: str, name: str) -> str:
    return f"/v1/workloads/{quote(namespace, safe='')}/{quote(name, safe='')}"
