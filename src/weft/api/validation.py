"""Semantic validation: rules a schema cannot express. One function per kind or rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from weft.api.authorizationpolicy import AuthorizationPolicy
from weft.api.destinationrule import DestinationRule
from weft.api.gateway import Gateway, Server, ServerTLSSettings
from weft.api.kinds import IstioObject
from weft.api.peerauthentication import PeerAuthentication
from weft.api.protocol import Protocol
from weft.api.requestauthentication import RequestAuthentication
from weft.api.serviceentry import ServiceEntry
from weft.api.sidecar import IstioEgressListener, Sidecar
from weft.api.trafficpolicy import ClientTLSSettings, LoadBalancerSettings, TrafficPolicy
from weft.api.validation_common import (
    Problems,
    check_addresses,
    check_destination_host,
    check_endpoint_address,
    check_export_to,
    check_host,
    check_hosts,
    check_labels,
    is_namespace,
    problem,
)
from weft.api.validation_http import header_name_error
from weft.api.validation_routes import validate_virtual_service
from weft.api.validation_security import (
    validate_authorization_policy,
    validate_peer_authentication,
    validate_request_authentication,
)
from weft.api.virtualservice import VirtualService
from weft.api.workload import ReadinessProbe, WorkloadEntry, WorkloadEntrySpec, WorkloadGroup
from weft.errors import ConfigProblem


def validate(obj: IstioObject) -> list[ConfigProblem]:
    """Every semantic problem with `obj`, each naming its kind, namespace/name and field."""
    rules: Callable[[Any], Problems] = _RULES[type(obj)]
    meta = obj.metadata
    return [
        dataclasses.replace(p, kind=obj.kind, namespace=meta.namespace, name=meta.name)
        for p in rules(obj)
    ]


# --- DestinationRule ---------------------------------------------------------------------


def validate_destination_rule(dr: DestinationRule) -> Problems:
    spec = dr.spec
    if not spec.host:
        yield problem("spec.host", "DestinationRule has no host", "set 'host' to a service name")
    else:
        yield from check_host("spec.host", spec.host)
    if spec.traffic_policy is not None:
        yield from _traffic_policy("spec.trafficPolicy", spec.traffic_policy)
    seen: dict[str, int] = {}
    for i, subset in enumerate(spec.subsets):
        field = f"spec.subsets[{i}]"
        if not subset.name:
            yield problem(f"{field}.name", "subset has no name", "name the subset, e.g. 'v1'")
        elif subset.name in seen:
            yield problem(
                f"{field}.name",
                f"subset name {subset.name!r} is already used by spec.subsets[{seen[subset.name]}]",
                "give each subset a unique name",
            )
        else:
            seen[subset.name] = i
        if subset.traffic_policy is not None:
            yield from _traffic_policy(f"{field}.trafficPolicy", subset.traffic_policy)
    yield from check_export_to("spec.exportTo", spec.export_to)


def _traffic_policy(field: str, policy: TrafficPolicy) -> Problems:
    if policy.load_balancer is not None:
        yield from _load_balancer(f"{field}.loadBalancer", policy.load_balancer)
    if policy.tls is not None:
        yield from _client_tls(f"{field}.tls", policy.tls)
    ports: dict[int, int] = {}
    for i, settings in enumerate(policy.port_level_settings):
        item = f"{field}.portLevelSettings[{i}]"
        number = settings.port.number if settings.port is not None else None
        if number is None:
            yield problem(
                f"{item}.port", "port level settings need a port", "add 'port: {number: 80}'"
            )
        elif number in ports:
            yield problem(
                f"{item}.port.number",
                f"port {number} already has settings in {field}.portLevelSettings[{ports[number]}]",
                "merge the settings for one port into one entry",
            )
        else:
            ports[number] = i
        if settings.load_balancer is not None:
            yield from _load_balancer(f"{item}.loadBalancer", settings.load_balancer)
        if settings.tls is not None:
            yield from _client_tls(f"{item}.tls", settings.tls)


def _load_balancer(field: str, lb: LoadBalancerSettings) -> Problems:
    if lb.simple == "PASSTHROUGH":
        # Istio forwards to the connection's original destination (an ORIGINAL_DST cluster).
        # Weft's sidecars take outbound traffic as an HTTP proxy, not by capture, so that
        # destination is the sidecar itself: the cluster would loop back into it.
        yield problem(
            f"{field}.simple",
            "PASSTHROUGH is not supported: it forwards to the address the client connected "
            "to, and a Weft sidecar receives outbound requests as their HTTP proxy, so that "
            "address is the sidecar itself",
            "use ROUND_ROBIN, LEAST_REQUEST or RANDOM",
        )
    if lb.simple is not None and lb.consistent_hash is not None:
        yield problem(field, "sets both simple and consistentHash", "keep only one of them")
    if lb.consistent_hash is not None:
        ch = lb.consistent_hash
        keys = ch.hash_keys_set()
        if len(keys) != 1:
            yield problem(
                f"{field}.consistentHash",
                f"sets {len(keys)} hash keys; it takes exactly one",
                "use one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            )
        where = f"{field}.consistentHash"
        if ch.http_header_name is not None:
            error = header_name_error(ch.http_header_name)
            if error is not None:
                yield problem(f"{where}.httpHeaderName", error, "name the header, e.g. x-user")
        if ch.http_query_parameter_name == "":
            yield problem(
                f"{where}.httpQueryParameterName",
                "query parameter name is empty",
                "name the parameter, e.g. user",
            )
        if ch.http_cookie is not None and not ch.http_cookie.name:
            yield problem(f"{where}.httpCookie.name", "cookie name is empty", "name the cookie")


_TLS_FILES = (
    ("clientCertificate", "client_certificate"),
    ("privateKey", "private_key"),
    ("caCertificates", "ca_certificates"),
    ("caCrl", "ca_crl"),
)


def _client_tls(field: str, tls: ClientTLSSettings) -> Problems:
    files = [(wire, getattr(tls, name)) for wire, name in _TLS_FILES]
    if tls.mode in ("ISTIO_MUTUAL", "DISABLE"):
        # Mesh certificates come from the mesh CA; files here would be ignored.
        for wire, path in files:
            if path is not None:
                yield problem(
                    f"{field}.{wire}",
                    f"mode {tls.mode} uses no {wire}",
                    "drop it, or use mode SIMPLE or MUTUAL to use your own certificates",
                )
        return
    for wire, path in files:
        if path is not None and not path.startswith("/"):
            # Envoy reads it on the sidecar's machine, from wherever Envoy was started.
            yield problem(
                f"{field}.{wire}",
                f"{path!r} is not an absolute path",
                "give the full path of the PEM file, e.g. /etc/certs/cert-chain.pem",
            )
    if (tls.client_certificate is None) != (tls.private_key is None):
        yield problem(
            field,
            "sets only one of clientCertificate and privateKey",
            "set both: the certificate and its private key",
        )
    has_files = tls.client_certificate is not None and tls.private_key is not None
    if tls.mode == "MUTUAL" and tls.credential_name is None and not has_files:
        yield problem(
            field,
            "mode MUTUAL needs clientCertificate and privateKey, or credentialName",
            "add the certificate files, or use mode ISTIO_MUTUAL for mesh certificates",
        )
    elif tls.mode == "SIMPLE" and has_files:
        yield problem(
            field,
            "mode SIMPLE sends no client certificate",
            "use mode MUTUAL to send clientCertificate, or drop it and privateKey",
        )


# --- ServiceEntry, WorkloadEntry, WorkloadGroup ------------------------------------------


def validate_service_entry(se: ServiceEntry) -> Problems:
    spec = se.spec
    yield from check_hosts("spec.hosts", spec.hosts, what="ServiceEntry")
    for i, host in enumerate(spec.hosts):
        if host == "*":
            yield problem(f"spec.hosts[{i}]", "host '*' is not allowed", "name the hosts")
    yield from check_addresses("spec.addresses", spec.addresses)
    yield from _service_ports(se)
    yield from _resolution(se)
    for i, endpoint in enumerate(spec.endpoints):
        yield from _workload(f"spec.endpoints[{i}]", endpoint, resolution=spec.resolution)
    yield from check_export_to("spec.exportTo", spec.export_to)


def _service_ports(se: ServiceEntry) -> Problems:
    ports = se.spec.ports
    if not ports:
        yield problem(
            "spec.ports", "ServiceEntry has no ports", "add 'ports: [{number: 443, protocol: TLS}]'"
        )
    numbers: set[int] = set()
    names: set[str] = set()
    for i, port in enumerate(ports):
        if port.number in numbers:
            yield problem(f"spec.ports[{i}].number", f"port {port.number} is listed twice")
        numbers.add(port.number)
        if port.name is not None:
            if port.name in names:
                yield problem(f"spec.ports[{i}].name", f"port name {port.name!r} is used twice")
            names.add(port.name)


def _resolution(se: ServiceEntry) -> Problems:
    spec = se.spec
    if spec.endpoints and spec.workload_selector is not None:
        yield problem(
            "spec",
            "sets both endpoints and workloadSelector",
            "list endpoints, or select WorkloadEntries with workloadSelector, not both",
        )
    if spec.resolution == "STATIC" and not spec.endpoints and spec.workload_selector is None:
        yield problem(
            "spec.endpoints",
            "resolution STATIC needs endpoints or a workloadSelector",
            "list the endpoint addresses, or use resolution DNS",
        )
    if spec.resolution in ("DNS", "DNS_ROUND_ROBIN") and not spec.endpoints:
        for i, host in enumerate(spec.hosts):
            if host.startswith("*"):
                yield problem(
                    f"spec.hosts[{i}]",
                    f"wildcard host {host!r} cannot be resolved with DNS",
                    "list endpoints, or use resolution NONE for wildcard hosts",
                )
    if spec.resolution == "DNS_ROUND_ROBIN" and len(spec.endpoints) > 1:
        yield problem(
            "spec.endpoints",
            "resolution DNS_ROUND_ROBIN takes at most one endpoint",
            "use resolution DNS for several endpoints",
        )


def _workload(field: str, spec: WorkloadEntrySpec, *, resolution: str | None = None) -> Problems:
    if not spec.address:
        if spec.network is None:
            yield problem(
                f"{field}.address",
                "workload has no address",
                "set 'address' (IP, DNS name or unix:///path), or 'network' for a remote network",
            )
    else:
        yield from check_endpoint_address(f"{field}.address", spec.address, resolution=resolution)
    yield from check_labels(f"{field}.labels", spec.labels)


def validate_workload_entry(we: WorkloadEntry) -> Problems:
    yield from _workload("spec", we.spec)


def validate_workload_group(wg: WorkloadGroup) -> Problems:
    # The template describes many workloads; each gets its address when it registers.
    yield from check_labels("spec.template.labels", wg.spec.template.labels)
    if wg.spec.probe is not None:
        yield from _probe("spec.probe", wg.spec.probe)


def _probe(field: str, probe: ReadinessProbe) -> Problems:
    checks = [
        name
        for name, value in (
            ("httpGet", probe.http_get),
            ("tcpSocket", probe.tcp_socket),
            ("exec", probe.exec),
            ("grpc", probe.grpc),
        )
        if value is not None
    ]
    if len(checks) != 1:
        yield problem(
            field,
            f"probe sets {len(checks)} health checks; it takes exactly one",
            "use one of httpGet, tcpSocket, exec or grpc",
        )
    if probe.exec is not None and not probe.exec.command:
        yield problem(f"{field}.exec.command", "exec probe has no command", "list the command")


# --- Gateway -----------------------------------------------------------------------------


def validate_gateway(gw: Gateway) -> Problems:
    if not gw.spec.servers:
        yield problem("spec.servers", "Gateway has no servers", "add at least one server")
    for i, server in enumerate(gw.spec.servers):
        yield from _server(f"spec.servers[{i}]", server)


def _server(field: str, server: Server) -> Problems:
    port = server.port
    if port is None:
        yield problem(
            f"{field}.port", "server has no port", "add 'port: {number: 80, protocol: HTTP}'"
        )
    else:
        if port.number is None:
            yield problem(f"{field}.port.number", "server port has no number", "add 'number: 80'")
        if port.protocol is None:
            yield problem(
                f"{field}.port.protocol", "server port has no protocol", "add 'protocol: HTTP'"
            )
    if not server.hosts:
        yield problem(f"{field}.hosts", "server has no hosts", "list hosts, e.g. ['*']")
    for i, host in enumerate(server.hosts):
        yield from _namespaced_host(f"{field}.hosts[{i}]", host, required=False)
    secure = port is not None and port.protocol is not None and Protocol.parse(port.protocol).is_tls
    if secure and server.tls is None:
        yield problem(
            f"{field}.tls",
            f"server with protocol {port.protocol if port else ''} has no tls settings",
            "add 'tls: {mode: SIMPLE, credentialName: <secret>}'",
        )
    if server.tls is not None:
        yield from _server_tls(f"{field}.tls", server.tls)


def _server_tls(field: str, tls: ServerTLSSettings) -> Problems:
    if tls.mode not in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") or tls.credential_name:
        return
    if tls.server_certificate is None or tls.private_key is None:
        yield problem(
            field,
            f"mode {tls.mode} needs credentialName, or serverCertificate and privateKey",
            "name the certificate secret in 'credentialName'",
        )
    if tls.mode != "SIMPLE" and tls.ca_certificates is None:
        yield problem(
            field,
            f"mode {tls.mode} needs caCertificates to verify clients",
            "add 'caCertificates', or use credentialName",
        )


def _namespaced_host(field: str, value: str, *, required: bool) -> Problems:
    """A host in "namespace/dnsName" form; the namespace may be '*', '.', or '~' (none)."""
    namespace, sep, host = value.partition("/")
    if not sep:
        if required:
            yield problem(
                field,
                f"host {value!r} is not in namespace/dnsName form",
                f"write it as '*/{value}' (any namespace) or './{value}' (this namespace)",
            )
            return
        namespace, host = "*", value
    if namespace not in ("*", ".", "~") and not is_namespace(namespace):
        yield problem(
            field,
            f"{namespace!r} in {value!r} is not a namespace",
            "use '*', '.', '~' or a namespace name before the '/'",
        )
    if host != "*":
        yield from check_host(field, host)


# --- Sidecar -----------------------------------------------------------------------------


def validate_sidecar(sc: Sidecar) -> Problems:
    spec = sc.spec
    for i, ingress in enumerate(spec.ingress):
        field = f"spec.ingress[{i}]"
        if ingress.port is None or ingress.port.number is None:
            yield problem(f"{field}.port", "ingress listener has no port number", "add 'port'")
        elif ingress.port.protocol is None:
            yield problem(
                f"{field}.port.protocol", "ingress port has no protocol", "add 'protocol: HTTP'"
            )
    for i, egress in enumerate(spec.egress):
        yield from _egress(f"spec.egress[{i}]", egress, last=i == len(spec.egress) - 1)
    policy = spec.outbound_traffic_policy
    if policy is not None and policy.egress_proxy is not None:
        if policy.mode != "ALLOW_ANY":
            yield problem(
                "spec.outboundTrafficPolicy.egressProxy",
                "egressProxy is only used with mode ALLOW_ANY",
                "set 'mode: ALLOW_ANY', or drop egressProxy",
            )
        yield from check_destination_host(
            "spec.outboundTrafficPolicy.egressProxy", policy.egress_proxy.host
        )


def _egress(field: str, egress: IstioEgressListener, *, last: bool) -> Problems:
    if not egress.hosts:
        yield problem(f"{field}.hosts", "egress listener has no hosts", "list hosts such as './*'")
    for i, host in enumerate(egress.hosts):
        yield from _namespaced_host(f"{field}.hosts[{i}]", host, required=True)
    if (egress.port is None or egress.port.number is None) and not last:
        yield problem(
            field,
            "only the last egress listener may leave out the port",
            "give this listener a port, or move it to the end",
        )


_RULES: dict[type[Any], Callable[[Any], Iterator[ConfigProblem]]] = {
    VirtualService: validate_virtual_service,
    DestinationRule: validate_destination_rule,
    ServiceEntry: validate_service_entry,
    WorkloadEntry: validate_workload_entry,
    WorkloadGroup: validate_workload_group,
    Gateway: validate_gateway,
    Sidecar: validate_sidecar,
    PeerAuthentication: validate_peer_authentication,
    AuthorizationPolicy: validate_authorization_policy,
    RequestAuthentication: validate_request_authentication,
}
