"""The floor of the data-plane benchmark: two Envoys with the least config that does the job.

Client Envoy: a listener whose HTTP connection manager has only the router, sending to one
static cluster over mTLS. Server Envoy: an mTLS listener, the router, a static cluster to the
backend. Certificates come from a throwaway CA made here: EC P-256 keys, empty subjects and
SPIFFE URI SANs, like the mesh's own.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_certs(directory: Path, identities: dict[str, str]) -> dict[str, CertFiles]:
    """A CA and one workload certificate per name -> SPIFFE id, as PEM files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "weft bench CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "root-cert.pem"
    ca_path.write_bytes(_pem_cert(ca_cert))
    files: dict[str, CertFiles] = {}
    for name, uri in identities.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            # An empty subject makes the SAN the identity, so it is critical (RFC 5280).
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        files[name] = CertFiles(
            directory / f"{name}-cert.pem", directory / f"{name}-key.pem", ca_path
        )
        files[name].cert.write_bytes(_pem_cert(cert))
        files[name].key.write_bytes(_pem_key(key))
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
