"""Gateway: the listeners of an edge proxy (ingress or egress) and the TLS they terminate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import IstioModel, Port
from weft.api.meta import IstioResource

TLSVersion = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class ServerTLSSettings(IstioModel):
    """TLS a proxy presents to its downstream clients."""

    https_redirect: bool = False
    mode: Literal[
        "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"
    ] = "PASSTHROUGH"
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    verify_certificate_spki: list[str] = Field(default_factory=list)
    verify_certificate_hash: list[str] = Field(default_factory=list)
    min_protocol_version: TLSVersion = "TLS_AUTO"
    max_protocol_version: TLSVersion = "TLS_AUTO"
    cipher_suites: list[str] = Field(default_factory=list)


class Server(IstioModel):
    port: Port | None = None
    bind: str | None = None
    hosts: list[str] = Field(default_factory=list)
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class GatewaySpec(IstioModel):
    selector: dict[str, str] = Field(default_factory=dict)
    servers: list[Server] = Field(default_factory=list)


class Gateway(IstioResource):
    kind: Literal["Gateway"] = "Gateway"
    spec: GatewaySpec = Field(default_factory=GatewaySpec)
