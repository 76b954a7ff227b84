"""The workload's mesh identity in the agent: CA client, certificate rotation, SDS to Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Literal

from weft.agent.caclient import CaClient
from weft.agent.certs import WorkloadCertificates
from weft.agent.sds import SdsServer
from weft.ca.identity import fingerprint
from weft.contract.registration import MeshCredentials
from weft.controlplane.address import parse_host_port

log = logging.getLogger("weft.agent")


class MeshIdentity:
    """Built from the credentials in the control plane's registration answer.

    The key is made here and never leaves; Envoy reads key and chain over a Unix socket.
    """

    def __init__(
        self,
        credentials: MeshCredentials,
        work_dir: Path,
        ttl: float | None = None,
        key_kind: Literal["EC", "RSA"] = "EC",
    ):
        self.spiffe_id = credentials.identity
        self._token = credentials.credential
        bundle = list(credentials.trust_bundle)
        self._bundle = bundle
        self.client = CaClient(
            parse_host_port(credentials.ca_address, "caAddress"),
            bundle,
            lambda: self._token,
            credentials.ca_server_name,
        )
        kwargs: dict[str, Any] = {"trust_bundle": bundle, "key_kind": key_kind}
        if ttl is not None:
            kwargs["requested_ttl"] = ttl
        self.certs = WorkloadCertificates(self.spiffe_id, self.client.create_certificate, **kwargs)
        self.sds = SdsServer(self.certs, work_dir / "sds.sock")
        self._task: asyncio.Task[None] | None = None
        self._early_renewal: asyncio.Task[object] | None = None

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

    def cert_root(self) -> str | None:
        """Fingerprint of the root the current certificate chains to (reported in heartbeats)."""
        issued = self.certs.certificate
        if issued is None or issued.root is None:
            return None
        return fingerprint(issued.root)

    def update(self, credentials: MeshCredentials) -> None:
        """A heartbeat answer: a fresh credential, the trust bundle, and the signing root.

        During a root rotation the bundle grows to both roots first; once the new root signs,
        a certificate from the old one is renewed at once rather than at half-life.
        """
        self._token = credentials.credential
        bundle = list(credentials.trust_bundle)
        if bundle and bundle != self._bundle:
            log.info("trust bundle changed: %d root(s)", len(bundle))
            self._bundle = bundle
            self.certs.set_trust_bundle(bundle)
            self.client.update_roots(bundle)
        signing = credentials.signing_root
        current = self.cert_root()
        renewing = self._early_renewal is not None and not self._early_renewal.done()
        if signing and current and signing != current and not renewing:
            log.info("the CA signs with a new root: renewing the workload certificate now")
            self._early_renewal = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        try:
            await self.certs.renew()
        except Exception as e:  # the regular schedule retries; say why this one failed
            log.warning("early renewal failed: %s", e)

    async def stop(self) -> None:
        if self._early_renewal is not None:
            self._early_renewal.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sds.stop()
        await self.client.close()
