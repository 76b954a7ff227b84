"""`weft run`: a workload and its sidecar, started, registered, drained and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from weft.agent.bootstrap import SidecarIdentity, sidecar_bootstrap
from weft.agent.envoy import EnvoyProcess
from weft.agent.mesh_identity import MeshIdentity
from weft.agent.ports import free_port
from weft.agent.registration import Registrar, probe_http, probe_tcp
from weft.api.protocol import Protocol
from weft.api.workload import ReadinessProbe
from weft.contract.node import InboundPort
from weft.contract.registration import Registration, RegistrationAnswer
from weft.contract.wire import MessageError, parse_message
from weft.controlplane.client import AdminClient
from weft.errors import ProxyError
from weft.registry.model import TLS_MODE_LABEL
from weft.xds.tls import TLS_MODE_ISTIO

log = logging.getLogger("weft.agent")

HEARTBEAT_INTERVAL = 2.0


@dataclass
class RunOptions:
    service: str
    app_port: int
    command: Sequence[str]
    namespace: str = "default"
    version: str = ""
    service_account: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    service_port: int | None = None
    inbound_port: int | None = None
    proxy_port: int | None = None
    admin_port: int | None = None
    protocol: Protocol = Protocol.HTTP
    probe_path: str | None = None
    xds: tuple[str, int] = ("127.0.0.1", 15010)
    admin: tuple[str, int] = ("127.0.0.1", 15014)
    drain_seconds: float = 1.0
    work_dir: Path | None = None
    envoy_log_level: str = "warning"
    workload_name: str | None = None
    group: str | None = None
    mtls: bool = True
    cert_ttl: float | None = None  # requested workload certificate lifetime (seconds)
    key_type: Literal["EC", "RSA"] = "EC"

    def resolved_labels(self) -> dict[str, str]:
        labels = {"app": self.service, **self.labels}
        if self.version:
            labels.setdefault("version", self.version)
        if self.mtls:
            # As on an injected pod: this workload's sidecar takes mesh mTLS (auto mTLS).
            labels.setdefault(TLS_MODE_LABEL, TLS_MODE_ISTIO)
        return labels


class SidecarAgent:
    """The agent for one workload: runs the app and its Envoy, and keeps it registered."""

    def __init__(self, opts: RunOptions) -> None:
        self.opts = opts
        self.name = opts.workload_name or _generated_name(opts.service, opts.version)
        self.inbound_port = opts.inbound_port or free_port()
        self.proxy_port = opts.proxy_port or free_port()
        self.admin_port = opts.admin_port or free_port()
        self.service_port = opts.service_port or opts.app_port
        self.labels = opts.resolved_labels()
        self.service_account = opts.service_account or opts.service
        self.probe_config: ReadinessProbe | None = None
        # Built (and so checked) before anything starts: bad flags fail here, naming the field.
        registration = parse_message(
            Registration,
            {
                "name": self.name,
                "namespace": opts.namespace,
                "service": opts.service,
                "labels": self.labels,
                "healthy": False,
                "ports": [
                    {
                        "service_port": self.service_port,
                        "target_port": self.inbound_port,
                        "name": opts.protocol.lower(),
                        "protocol": opts.protocol.value,
                    }
                ],
                "service_account": opts.service_account or None,
                "group": opts.group,
            },
            "workload",
        )
        self._own_work_dir = opts.work_dir is None
        self.work_dir = opts.work_dir or Path(tempfile.mkdtemp(prefix=f"weft-{self.name}-"))
        self.registrar = Registrar(AdminClient(*opts.admin, timeout=3), registration)
        self.envoy: EnvoyProcess | None = None
        self.mesh_identity: MeshIdentity | None = None
        self.app: asyncio.subprocess.Process | None = None

    def identity(self) -> SidecarIdentity:
        sds = self.mesh_identity
        return SidecarIdentity(
            sds_socket=str(sds.socket_path) if sds is not None else None,
            admin_port=self.admin_port,
            workload=self.name,
            namespace=self.opts.namespace,
            service=self.opts.service,
            labels=self.labels,
            service_account=self.service_account,
            proxy_port=self.proxy_port,
            inbound=(
                InboundPort(
                    service_port=self.service_port,
                    inbound_port=self.inbound_port,
                    app_port=self.opts.app_port,
                    protocol=self.opts.protocol,
                    name=self.opts.protocol.lower(),
                ),
            ),
        )

    def adopt(self, answer: RegistrationAnswer) -> None:
        """Take labels, identity and probe from the WorkloadEntry the control plane made."""
        spec = answer.entry.spec
        self.labels = dict(spec.labels or self.labels)
        self.service_account = spec.service_account or self.service_account
        self.probe_config = answer.probe

    def app_env(self) -> dict[str, str]:
        env = dict(os.environ)
        proxy = f"http://127.0.0.1:{self.proxy_port}"
        env.update(
            PORT=str(self.opts.app_port),
            HTTP_PROXY=proxy,
            http_proxy=proxy,
            WEFT_SERVICE=self.opts.service,
            WEFT_NAMESPACE=self.opts.namespace,
            WEFT_WORKLOAD=self.name,
        )
        if self.opts.version:
            env["WEFT_VERSION"] = self.opts.version
        # Service names must go through the sidecar; only the loopback may bypass it.
        env["NO_PROXY"] = env["no_proxy"] = ""
        return env

    async def probe(self) -> bool:
        """The group's readiness probe if it has one, else --probe-path, else a TCP connect."""
        probe = self.probe_config
        if probe is not None and probe.http_get is not None:
            get = probe.http_get
            return await probe_http(get.port or self.opts.app_port, get.path or "/")
        if probe is not None and probe.tcp_socket is not None:
            return await probe_tcp(probe.tcp_socket.port or self.opts.app_port)
        if self.opts.probe_path:
            return await probe_http(self.opts.app_port, self.opts.probe_path)
        return await probe_tcp(self.opts.app_port)

    async def run(self) -> int:
        """Run until the app exits or a signal arrives; returns the app's exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            # Registering first lets a WorkloadGroup decide labels and identity; if the
            # control plane is away, the flags decide and registration is retried.
            answer = await self._register_at_start()
            if answer is not None:
                self.adopt(answer)
                await self._start_mesh_identity(answer)
            self.envoy = EnvoyProcess(
                sidecar_bootstrap(self.identity(), *self.opts.xds, self.admin_port),
                self.work_dir,
                self.admin_port,
                log_level=self.opts.envoy_log_level,
            )
            await self.envoy.start()
            log.info(
                "%s: sidecar up (inbound %d -> app %d, HTTP_PROXY port %d, admin %d)",
                self.name, self.inbound_port, self.opts.app_port, self.proxy_port,
                self.admin_port,
            )  # fmt: skip
            with contextlib.suppress(ProxyError):
                await self.envoy.wait_live(timeout=20)
            self.app = await asyncio.create_subprocess_exec(
                *self.opts.command, env=self.app_env(), start_new_session=True
            )
            heartbeat = asyncio.create_task(self._heartbeat())
            app_done = asyncio.create_task(self.app.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({app_done, stopped}, return_when=asyncio.FIRST_COMPLETED)
            heartbeat.cancel()
            stopped.cancel()
            return await self._shutdown(app_exited=app_done.done())
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self._cleanup()

    async def _register_at_start(self, patience: float = 20.0) -> RegistrationAnswer | None:
        """Registration gives the identity and CA details; wait a little for a starting
        control plane, then go on without (the heartbeat keeps trying)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            answer = await self.registrar.register()
            if answer is not None or loop.time() >= deadline or self.registrar.refused:
                return answer
            await asyncio.sleep(0.5)

    async def _start_mesh_identity(self, answer: RegistrationAnswer) -> None:
        if not self.opts.mtls or answer.credentials is None:
            return
        identity = MeshIdentity(
            answer.credentials, self.work_dir, self.opts.cert_ttl, self.opts.key_type
        )
        try:
            await identity.start()
        except ProxyError as e:
            log.error("%s: no mesh identity, plaintext only: %s", self.name, e)
            await identity.stop()
            return
        self.mesh_identity = identity

    async def _heartbeat(self) -> None:
        while True:
            healthy = await self.probe()
            identity = self.mesh_identity
            answer = await self.registrar.report(
                healthy, identity.cert_root() if identity is not None else None
            )
            if isinstance(answer, RegistrationAnswer):
                self.adopt(answer)
            if answer is not None and identity is not None and answer.credentials is not None:
                identity.update(answer.credentials)
            await asyncio.sleep(HEARTBEAT_INTERVAL if healthy else 0.2)

    async def _shutdown(self, app_exited: bool) -> int:
        # Leave the mesh first so callers stop picking this endpoint, then drain.
        await self.registrar.deregister()
        if not app_exited:
            await asyncio.sleep(self.opts.drain_seconds)
        if self.envoy is not None:
            with contextlib.suppress(ProxyError):
                await self.envoy.drain(seconds=self.opts.drain_seconds)
        code = await self._stop_app()
        log.info("%s: app exited with %s", self.name, code)
        return code

    async def _stop_app(self, timeout: float = 5.0) -> int:
        app = self.app
        if app is None:
            return 0
        if app.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(app.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(app.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(app.pid, signal.SIGKILL)
                await app.wait()
        code = app.returncode or 0
        return code if code >= 0 else 128 - code

    async def _cleanup(self) -> None:
        await self._stop_app()
        if self.envoy is not None:
            await self.envoy.stop()
        if self.mesh_identity is not None:
            await self.mesh_identity.stop()
        await self.registrar.close()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def run_workload(opts: RunOptions) -> int:
    try:
        return asyncio.run(SidecarAgent(opts).run())
    except MessageError as e:
        print(f"weft run: {e}", file=sys.stderr)
        return 2
    except ProxyError as e:
        print(f"weft run: {e}", file=sys.stderr)
        return 1


def _generated_name(service: str, version: str) -> str:
    """service-version-random, made a valid object name whatever the version is written as."""
    version = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    return "-".join(filter(None, (service, version, secrets.token_hex(3))))
