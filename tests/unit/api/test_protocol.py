"""The protocol model: Istio's rules for choosing a port's protocol, and what each one means."""

from __future__ import annotations

import pytest

from weft.api.base import PROTOCOLS
from weft.api.protocol import (
    Protocol,
    protocol_from_port_name,
    protocol_of_kubernetes_port,
    protocol_of_port,
)

P = Protocol


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("http", P.HTTP),
        ("HTTP", P.HTTP),
        ("http-web", P.HTTP),
        ("Http-Web-2", P.HTTP),
        ("http2", P.HTTP2),
        ("http2-api", P.HTTP2),
        ("https", P.HTTPS),
        ("https-admin", P.HTTPS),
        ("grpc", P.GRPC),
        ("grpc-orders", P.GRPC),
        # grpc-web holds a dash, yet is a protocol of its own, with or without a suffix.
        ("grpc-web", P.GRPC_WEB),
        ("GRPC-WEB-ui", P.GRPC_WEB),
        ("grpc-webui", P.GRPC_WEB),
        ("tcp", P.TCP),
        ("tcp-db", P.TCP),
        ("tls", P.TLS),
        ("tls-passthrough", P.TLS),
        ("mongo", P.MONGO),
        ("mysql-primary", P.MYSQL),
        ("redis", P.REDIS),
        ("udp-dns", P.UDP),
        ("http_proxy", P.HTTP_PROXY),
        # No recognised prefix before the first dash: nobody declared a protocol.
        ("", P.UNKNOWN),
        ("web", P.UNKNOWN),
        ("httpweb", P.UNKNOWN),
        ("web-http", P.UNKNOWN),
        ("-http", P.UNKNOWN),
        ("grpcweb", P.UNKNOWN),
        ("unknown", P.UNKNOWN),
    ],
)
def test_port_names_choose_the_protocol_by_prefix(name: str, expected: Protocol) -> None:
    assert protocol_from_port_name(name) is expected


@pytest.mark.parametrize(
    ("declared", "name", "expected"),
    [
        ("HTTP", "tcp-foo", P.HTTP),  # the field wins over the name
        ("tls", "http", P.TLS),  # in any case
        ("GRPC-WEB", None, P.GRPC_WEB),
        ("UDP", "statsd", P.UDP),
        (None, "grpc-otlp", P.GRPC),  # without the field, the name decides
        (None, "admin", P.UNKNOWN),
        ("", None, P.UNKNOWN),
    ],
)
def test_a_declared_protocol_wins_over_the_port_name(
    declared: str | None, name: str | None, expected: Protocol
) -> None:
    assert protocol_of_port(declared, name) is expected


@pytest.mark.parametrize(
    ("number", "name", "app_protocol", "transport", "expected"),
    [
        # appProtocol wins over the name, by the same prefix rules.
        (8080, "tcp", "http", "TCP", P.HTTP),
        (8080, "http", "grpc", "TCP", P.GRPC),
        (8080, "web", "grpc-web", "TCP", P.GRPC_WEB),
        (8080, "web", "HTTP2", "TCP", P.HTTP2),
        (3306, "db", "mysql", "TCP", P.MYSQL),
        (8080, "http", "example.com/custom", "TCP", P.UNKNOWN),
        # Kubernetes' own application protocols.
        (8080, "web", "kubernetes.io/h2c", "TCP", P.HTTP2),
        (8080, "tcp", "kubernetes.io/ws", "TCP", P.HTTP),
        (8443, "web", "kubernetes.io/wss", "TCP", P.HTTPS),
        # Without appProtocol, the name.
        (9080, "http-web", None, "TCP", P.HTTP),
        (9080, "grpc-web", None, "TCP", P.GRPC_WEB),
        (9080, "web", None, "TCP", P.UNKNOWN),
        # A UDP port is UDP whatever it is called.
        (53, "http", "http", "UDP", P.UDP),
        (8125, "statsd", None, "UDP", P.UDP),
        # Servers that speak first default to TCP: sniffing would wait on them forever.
        (25, "smtp", None, "TCP", P.TCP),
        (53, "dns", None, "TCP", P.TCP),
        (3306, "db", None, "TCP", P.TCP),
        (27017, "", None, "TCP", P.TCP),
        (27017, "http", None, "TCP", P.HTTP),  # ... unless the name says otherwise
        (3306, "db", "example.com/sql", "TCP", P.TCP),
        (8080, "", None, "SCTP", P.UNKNOWN),
    ],
)
def test_kubernetes_ports_use_app_protocol_then_the_name(
    number: int, name: str, app_protocol: str | None, transport: str, expected: Protocol
) -> None:
    found = protocol_of_kubernetes_port(number, name, app_protocol, transport)  # type: ignore[arg-type]
    assert found is expected


# is_http, uses_http2, is_grpc, is_tcp_proxied, is_tls, is_udp, is_proxied, routed_as_http
T, F = True, False
PREDICATES = {
    P.HTTP: (T, F, F, F, F, F, T, T),
    P.HTTP2: (T, T, F, F, F, F, T, T),
    P.GRPC: (T, T, T, F, F, F, T, T),
    P.GRPC_WEB: (T, T, T, F, F, F, T, T),
    P.HTTP_PROXY: (T, F, F, F, F, F, T, T),
    P.HTTPS: (F, F, F, T, T, F, T, F),
    P.TLS: (F, F, F, T, T, F, T, F),
    P.TCP: (F, F, F, T, F, F, T, F),
    P.MONGO: (F, F, F, T, F, F, T, F),
    P.MYSQL: (F, F, F, T, F, F, T, F),
    P.REDIS: (F, F, F, T, F, F, T, F),
    P.UDP: (F, F, F, F, F, T, F, F),
    # Not declared: not HTTP, not TCP, yet routed and served as HTTP (Weft does not sniff).
    P.UNKNOWN: (F, F, F, F, F, F, T, T),
}


@pytest.mark.parametrize("protocol", list(Protocol))
def test_what_each_protocol_means(protocol: Protocol) -> None:
    found = (
        protocol.is_http,
        protocol.uses_http2,
        protocol.is_grpc,
        protocol.is_tcp_proxied,
        protocol.is_tls,
        protocol.is_udp,
        protocol.is_proxied,
        protocol.routed_as_http,
    )
    assert found == PREDICATES[protocol]
    assert protocol.is_unknown == (protocol is P.UNKNOWN)


def test_every_protocol_is_http_tcp_udp_or_unknown_exactly_once() -> None:
    for p in Protocol:
        assert [p.is_http, p.is_tcp_proxied, p.is_udp, p.is_unknown].count(True) == 1, p


def test_the_api_accepts_exactly_the_protocols_a_user_can_declare() -> None:
    assert set(PROTOCOLS) == {p.value for p in Protocol} - {"UNKNOWN"}


@pytest.mark.parametrize(("text", "expected"), [("grpc-web", P.GRPC_WEB), ("Tcp", P.TCP)])
def test_parse_takes_any_case(text: str, expected: Protocol) -> None:
    assert Protocol.parse(text) is expected
    assert Protocol.parse(expected.value) is expected


def test_parse_refuses_what_is_not_a_protocol_and_says_what_is() -> None:
    with pytest.raises(ValueError, match=r"protocol 'SMTP' is unknown: use one of HTTP, HTTP2,"):
        Protocol.parse("SMTP")
    with pytest.raises(ValueError, match=r"^ports\[0\]\.protocol 'h2c' is unknown"):
        Protocol.parse("h2c", "ports[0].protocol")
