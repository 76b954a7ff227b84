"""The floor of the data-plane benchmark: two Envoys with the least config that does the job.

Client Envoy: a listener whose HTTP connection manager has only the router, sending to one
static cluster over mTLS. Server Envoy: an mTLS listener, the router, a static cluster to the
backend. Certificates come from a throwaway CA in a temp dir, made with the mesh's own CA code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weft.agent.identity import generate_key, key_pem, make_csr
from weft.ca.authority import CertificateAuthority
from weft.ca.identity import SpiffeId

TRUST_DOMAIN = "cluster.local"
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    ca: Path


def spiffe(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


def write_certs(directory: Path, identities: dict[str, str]) -> dict[str, CertFiles]:
    """A CA and one workload certificate per name -> SPIFFE id, as PEM files in `directory`.

    Made by the mesh's own CA and agent code, so the floor's certificates are shaped exactly
    like a sidecar's (EC P-256, empty subject, critical URI SAN).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.load_or_create(directory / "ca-state", trust_domain=TRUST_DOMAIN)
    ca_path = directory / "root-cert.pem"
    ca_path.write_text("".join(ca.trust_bundle()))
    files: dict[str, CertFiles] = {}
    for name, uri in identities.items():
        key = generate_key()
        chain = ca.sign_csr(make_csr(key, uri), SpiffeId.parse(uri))
        files[name] = CertFiles(
            directory / f"{name}-cert.pem", directory / f"{name}-key.pem", ca_path
        )
        files[name].cert.write_text("".join(chain[:-1]))  # leaf (and intermediates), no root
        files[name].key.write_text(key_pem(key))
    return files


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _static_cluster(name: str, port: int, tls: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }
    if tls is not None:
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}
    return cluster


def _http_listener(
    name: str,
    port: int,
    cluster: str,
    tls: dict[str, Any] | None = None,
    absolute_urls: bool = False,
) -> dict[str, Any]:
    manager: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "route_config": {
            "name": name,
            "virtual_hosts": [
                {
                    "name": name,
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                }
            ],
        },
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
    }
    if absolute_urls:
        # wrk sends the same proxy-style request (GET http://host:port/) as to the sidecar.
        manager["http_protocol_options"] = {"allow_absolute_url": True}
    chain: dict[str, Any] = {
        "filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
        ]
    }
    if tls is not None:
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls}
    return {"name": name, "address": _address(port), "filter_chains": [chain]}


def _common_tls(files: CertFiles, peer_san: str | None) -> dict[str, Any]:
    validation: dict[str, Any] = {"trusted_ca": {"filename": str(files.ca)}}
    if peer_san is not None:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": peer_san}}
        ]
    return {
        "tls_certificates": [
            {
                "certificate_chain": {"filename": str(files.cert)},
                "private_key": {"filename": str(files.key)},
            }
        ],
        "validation_context": validation,
    }


def client_bootstrap(
    listen_port: int, server_port: int, files: CertFiles, server_san: str
) -> dict[str, Any]:
    """wrk -> this listener -> mTLS to the server Envoy, verifying its SPIFFE id."""
    tls = {
        "@type": TLS_TYPE + "UpstreamTlsContext",
        "common_tls_context": _common_tls(files, server_san),
    }
    return {
        "static_resources": {
            "listeners": [_http_listener("client", listen_port, "server", absolute_urls=True)],
            "clusters": [_static_cluster("server", server_port, tls)],
        }
    }


def server_bootstrap(listen_port: int, backend_port: int, files: CertFiles) -> dict[str, Any]:
    """mTLS listener (client certificate required) -> the backend, in plaintext."""
    tls = {
        "@type": TLS_TYPE + "DownstreamTlsContext",
        "common_tls_context": _common_tls(files, None),
        "require_client_certificate": True,
    }
    return {
        "static_resources": {
            "listeners": [_http_listener("server", listen_port, "backend", tls)],
            "clusters": [_static_cluster("backend", backend_port)],
        }
    }
