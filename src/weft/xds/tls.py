"""TLS for the mesh: Istio-style mTLS contexts fed by the agent's SDS, and DR client TLS."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from weft.xds.protos import boolean, pack

SDS_CLUSTER = "sds-grpc"
WORKLOAD_SECRET = "default"  # key and chain: Istio's SDS names
ROOT_SECRET = "ROOTCA"
TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"
# Mesh mTLS is told apart from an app's own TLS by ALPN, as Istio does.
MESH_ALPN = "istio"
TLS_MODE_KEY = "tlsMode"
TLS_MODE_ISTIO = "istio"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def sni(port: int, subset: str, host: str) -> str:
    """Istio's SNI for mesh traffic, naming the cluster it is for."""
    return f"outbound_.{port}_.{subset}_.{host}"


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            api_config_source=config_source_pb2.ApiConfigSource(
                api_type=config_source_pb2.ApiConfigSource.GRPC,
                transport_api_version=config_source_pb2.V3,
                grpc_services=[
                    grpc_service_pb2.GrpcService(
                        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                    )
                ],
            ),
            resource_api_version=config_source_pb2.V3,
        ),
    )


def _tls_params() -> common_pb2.TlsParameters:
    # Envoy's client side stops at TLS 1.2 unless told otherwise.
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    )


def _uri_matchers(sans: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI,
            matcher=string_pb2.StringMatcher(exact=san),
        )
        for san in sorted(set(sans))
    ]


def _mesh_common(sans: Iterable[str], alpn: list[str]) -> tls_pb2.CommonTlsContext:
    validation = common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=_uri_matchers(sans)
    )
    return tls_pb2.CommonTlsContext(
        tls_params=_tls_params(),
        tls_certificate_sds_secret_configs=[sds_secret(WORKLOAD_SECRET)],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=validation,
            validation_context_sds_secret_config=sds_secret(ROOT_SECRET),
        ),
        alpn_protocols=alpn,
    )


def inbound_mtls() -> base_pb2.TransportSocket:
    """Server side of mesh mTLS: a client cert from the mesh CA is required.

    Any workload the mesh CA vouches for may connect; AuthorizationPolicy narrows that down.
    """
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_mesh_common((), ["h2", "http/1.1"]),
        require_client_certificate=boolean(True),
    )
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def outbound_mtls(sans: Iterable[str], server_name: str) -> base_pb2.TransportSocket:
    """Client side of mesh mTLS (ISTIO_MUTUAL): verify the server is who the service runs as."""
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=_mesh_common(sans, [MESH_ALPN]), sni=server_name
    )
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def raw_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=RAW_SOCKET, typed_config=pack(raw_buffer_pb2.RawBuffer()))


def simple_tls(
    server_name: str,
    sans: Iterable[str],
    ca_file: str | None,
    cert_file: str | None = None,
    key_file: str | None = None,
    insecure_skip_verify: bool = False,
    crl_file: str | None = None,
) -> base_pb2.TransportSocket:
    """DestinationRule SIMPLE or MUTUAL TLS, with files named in the rule."""
    validation = common_pb2.CertificateValidationContext()
    if not insecure_skip_verify:
        if ca_file:
            validation.trusted_ca.filename = ca_file
        else:
            validation.system_root_certs.CopyFrom(
                common_pb2.CertificateValidationContext.SystemRootCerts()
            )
        if crl_file:
            validation.crl.filename = crl_file
        validation.match_typed_subject_alt_names.extend(
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.DNS,
                matcher=string_pb2.StringMatcher(exact=san),
            )
            for san in sans
        )
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), validation_context=validation)
    if cert_file and key_file:
        common.tls_certificates.append(
            common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(filename=cert_file),
                private_key=base_pb2.DataSource(filename=key_file),
            )
        )
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=server_name)
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))
