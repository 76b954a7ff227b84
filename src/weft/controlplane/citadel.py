"""The control plane's CA endpoint: Istio's signing API over TLS, and workload credentials."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from weft.ca.authority import CertificateAuthority
from weft.ca.errors import RotationError
from weft.ca.identity import SpiffeId, fingerprint
from weft.ca.server import CertificateService
from weft.ca.tokens import BootstrapTokens
from weft.contract.registration import MeshCredentials
from weft.registry.local import Workload

log = logging.getLogger("weft.ca")

# Names the control plane's own serving certificate answers to, as istiod's does.
SERVER_NAME = "istiod.istio-system.svc"
SERVING_TTL = 365 * 86400.0
BOOTSTRAP_TOKEN_TTL = 600.0


class Citadel:
    """Owns the CA, the bootstrap-token key, and the TLS gRPC server that signs CSRs."""

    def __init__(
        self,
        state_dir: Path,
        trust_domain: str = "cluster.local",
        plugged_dir: Path | None = None,
        max_ttl: float | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"trust_domain": trust_domain, "plugged_dir": plugged_dir}
        if max_ttl is not None:
            kwargs["max_ttl"] = max_ttl
        self.ca = CertificateAuthority.load_or_create(state_dir, **kwargs)
        self.tokens = BootstrapTokens.load_or_create(state_dir)
        self.service = CertificateService(self.ca, self.tokens)
        self.address = ""
        self._server: grpc.aio.Server | None = None
        self._serving = self._issue_serving()
        self._serving_changed = False
        # What each agent last reported its certificate chains to, by (namespace, name).
        self.cert_roots: dict[tuple[str, str], str] = {}

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    def _issue_serving(self) -> grpc.ServerCertificateConfiguration:
        chain, key = self.ca.issue_serving_cert(
            [SERVER_NAME, "localhost"],
            ["127.0.0.1"],
            SpiffeId(self.trust_domain, "istio-system", "istiod"),
            SERVING_TTL,
        )
        return grpc.ssl_server_certificate_configuration([(key.encode(), "".join(chain).encode())])

    def _serving_config(self) -> grpc.ServerCertificateConfiguration | None:
        # gRPC asks before each handshake; a new config only after the signing root changed.
        if not self._serving_changed:
            return None
        self._serving_changed = False
        return self._serving

    async def start(self, host: str, port: int) -> None:
        credentials = grpc.dynamic_ssl_server_credentials(self._serving, self._serving_config)
        server = grpc.aio.server()
        self.service.add_to_server(server)
        if server.add_secure_port(f"{host}:{port}", credentials) == 0:
            raise OSError(f"cannot listen for the CA on {host}:{port}")
        await server.start()
        self._server = server
        self.address = f"{host}:{port}"
        log.info("CA (%s, trust domain %s) serving on %s", self.ca.mode, self.trust_domain, port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)

    def rotate_root(self, step: str, force: bool = False) -> dict[str, Any]:
        """One step of a root rotation: begin (trust the new root), activate (sign with it),
        finish (stop trusting the old one). Finish waits until every workload reported a
        certificate from the new root, unless forced."""
        if step == "begin":
            self.ca.begin_root_rotation()
        elif step == "activate":
            self.ca.activate_new_root()
            # The CA's own TLS certificate must chain to the root that will remain.
            self._serving = self._issue_serving()
            self._serving_changed = True
        elif step == "finish":
            behind = self.workloads_on_old_roots()
            if behind and not force:
                raise RotationError(
                    f"{len(behind)} workload(s) still hold a certificate from the old root "
                    f"({', '.join(behind[:5])}); wait for them to renew, or force it"
                )
            self.ca.finish_root_rotation()
        else:
            raise RotationError(f"unknown rotation step {step!r}: use begin, activate or finish")
        log.info("root rotation: %s done, phase %s", step, self.ca.rotation_phase)
        return self.status()

    def forget_except(self, registered: set[tuple[str, str]]) -> None:
        """Drop what workloads that left the mesh reported."""
        for key in set(self.cert_roots) - registered:
            del self.cert_roots[key]

    def workloads_on_old_roots(self) -> list[str]:
        signing = fingerprint(self.ca.trust_bundle()[0])
        return [f"{ns}/{name}" for (ns, name), root in self.cert_roots.items() if root != signing]

    def status(self) -> dict[str, Any]:
        return {**self.ca.describe(), "workloadsOnOldRoots": self.workloads_on_old_roots()}

    def credentials_for(self, workload: Workload) -> MeshCredentials:
        """What an agent needs to get its certificate: where the CA is, whom to trust, and a
        short-lived token that binds it to this workload's identity."""
        return MeshCredentials(
            ca_address=self.address,
            ca_server_name=SERVER_NAME,
            trust_domain=self.trust_domain,
            trust_bundle=self.ca.trust_bundle(),
            # Agents whose certificate chains to another root renew at once.
            signing_root=fingerprint(self.ca.trust_bundle()[0]),
            credential=self.tokens.issue(
                workload.namespace, workload.service_account, workload.name, BOOTSTRAP_TOKEN_TTL
            ),
            identity=str(SpiffeId(self.trust_domain, workload.namespace, workload.service_account)),
        )
