"""The control plane's CA endpoint: Istio's signing API over TLS, and workload credentials."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from weft.ca.authority import CertificateAuthority
from weft.ca.identity import SpiffeId
from weft.ca.server import CertificateService
from weft.ca.tokens import BootstrapTokens
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

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    async def start(self, host: str, port: int) -> None:
        chain, key = self.ca.issue_serving_cert(
            [SERVER_NAME, "localhost"],
            ["127.0.0.1"],
            SpiffeId(self.trust_domain, "istio-system", "istiod"),
            SERVING_TTL,
        )
        credentials = grpc.ssl_server_credentials([(key.encode(), "".join(chain).encode())])
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

    def credentials_for(self, workload: Workload) -> dict[str, Any]:
        """What an agent needs to get its certificate: where the CA is, whom to trust, and a
        short-lived token that binds it to this workload's identity."""
        return {
            "caAddress": self.address,
            "caServerName": SERVER_NAME,
            "trustDomain": self.trust_domain,
            "trustBundle": self.ca.trust_bundle(),
            "credential": self.tokens.issue(
                workload.namespace, workload.service_account, workload.name, BOOTSTRAP_TOKEN_TTL
            ),
            "identity": str(
                SpiffeId(self.trust_domain, workload.namespace, workload.service_account)
            ),
        }
