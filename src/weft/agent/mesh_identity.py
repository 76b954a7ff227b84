"""The workload's mesh identity in the agent: CA client, certificate rotation, SDS to Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from weft.agent.caclient import CaClient
from weft.agent.certs import WorkloadCertificates
from weft.agent.sds import SdsServer
from weft.controlplane.address import parse_host_port

log = logging.getLogger("weft.agent")


class MeshIdentity:
    """Built from the control plane's registration answer (CA address, trust bundle, token).

    The key is made here and never leaves; Envoy reads key and chain over a Unix socket.
    """

    def __init__(self, answer: Mapping[str, Any], work_dir: Path, ttl: float | None = None):
        self.spiffe_id = str(answer["identity"])
        self._token = str(answer["credential"])
        bundle = list(answer["trustBundle"])
        self._bundle = bundle
        self.client = CaClient(
            parse_host_port(str(answer["caAddress"]), "caAddress"),
            bundle,
            lambda: self._token,
            str(answer.get("caServerName") or "istiod.istio-system.svc"),
        )
        kwargs: dict[str, Any] = {"trust_bundle": bundle}
        if ttl is not None:
            kwargs["requested_ttl"] = ttl
        self.certs = WorkloadCertificates(self.spiffe_id, self.client.create_certificate, **kwargs)
        self.sds = SdsServer(self.certs, work_dir / "sds.sock")
        self._task: asyncio.Task[None] | None = None

    @property
    def socket_path(self) -> Path:
        return self.sds.socket_path

    async def start(self, wait: float = 15.0) -> bool:
        """Serve SDS and get the first certificate; False if none came within `wait`."""
        await self.sds.start()
        self._task = asyncio.create_task(self.certs.run())
        try:
            await asyncio.wait_for(self.certs.issued.wait(), wait)
        except TimeoutError:
            log.warning("no workload certificate after %.0fs; still trying", wait)
            return False
        return True

    def update(self, answer: Mapping[str, Any]) -> None:
        """A heartbeat answer: a fresh credential, and the trust bundle (root rotation)."""
        if answer.get("credential"):
            self._token = str(answer["credential"])
        bundle = list(answer.get("trustBundle") or [])
        if bundle and bundle != self._bundle:
            log.info("trust bundle changed: %d root(s)", len(bundle))
            self._bundle = bundle
            self.certs.set_trust_bundle(bundle)
            self.client.update_roots(bundle)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sds.stop()
        await self.client.close()
