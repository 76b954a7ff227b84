"""The protocol a port carries, and Istio's rules for telling it from what users write.

Every part of the mesh that treats ports by protocol asks a `Protocol` predicate; nothing
keeps a set of protocol names of its own. The rules:

- a ServiceEntry, Gateway or Sidecar port's `protocol` field names it (Istio's names, any
  case); Weft falls back to the port name when the field is left out;
- a port name names it by its prefix before the first dash (`http`, `http-web`, `grpc-x`,
  `tcp-db`), any case; `grpc-web...` is GRPC-WEB although it holds a dash;
- a Kubernetes Service port's `appProtocol`, when set, wins over its name (and Kubernetes'
  own `kubernetes.io/h2c`, `kubernetes.io/ws` and `kubernetes.io/wss` are understood); a UDP
  port is UDP whatever it is called; a few well-known ports that speak first (SMTP, DNS,
  MySQL, MongoDB) default to TCP rather than UNKNOWN.

UNKNOWN is a port whose protocol nobody declared. Istio sniffs such ports (HTTP when the
first bytes are HTTP, else TCP); Weft does not sniff and serves them as HTTP, both in the
outbound route table (as Istio builds HTTP routes for sniffed ports) and inbound.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Protocol(StrEnum):
    """A port's protocol, by Istio's name, upper case (GRPC-WEB keeps its dash)."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    HTTPS = "HTTPS"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-WEB"
    HTTP_PROXY = "HTTP_PROXY"  # a generic outbound proxy port (Sidecar egress listeners)
    TCP = "TCP"
    TLS = "TLS"
    MONGO = "MONGO"
    MYSQL = "MYSQL"
    REDIS = "REDIS"
    UDP = "UDP"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, name: str, field: str = "protocol") -> Protocol:
        """The protocol named `name`, in any case; ValueError naming `field` if none is."""
        try:
            return cls(name.upper())
        except ValueError:
            known = ", ".join(p.value for p in cls)
            raise ValueError(f"{field} {name!r} is unknown: use one of {known}") from None

    @classmethod
    def of(cls, value: Protocol | str) -> Protocol:
        """`value` as a Protocol: for port records that may still be built from plain names."""
        return value if isinstance(value, Protocol) else cls.parse(value)

    @property
    def is_http(self) -> bool:
        """Declared HTTP of some version: the proxy routes its requests."""
        return self in _HTTP

    @property
    def uses_http2(self) -> bool:
        """Carried over HTTP/2 to the upstream (gRPC needs it; HTTP2 says so)."""
        return self in _HTTP2

    @property
    def is_grpc(self) -> bool:
        return self in (Protocol.GRPC, Protocol.GRPC_WEB)

    @property
    def is_tcp_proxied(self) -> bool:
        """Forwarded as an opaque byte stream: plain TCP, TLS the proxy does not terminate,
        and the database protocols the proxy has no filter for."""
        return self in _TCP_PROXIED

    @property
    def is_tls(self) -> bool:
        """TLS end to end, from the app: the sidecar sees only SNI."""
        return self in (Protocol.HTTPS, Protocol.TLS)

    @property
    def is_udp(self) -> bool:
        return self is Protocol.UDP

    @property
    def is_unknown(self) -> bool:
        """Not declared: Istio sniffs it, Weft serves it as HTTP (see the module docstring)."""
        return self is Protocol.UNKNOWN

    @property
    def is_proxied(self) -> bool:
        """The sidecar proxies it at all: Istio (and Weft) do not proxy UDP."""
        return self is not Protocol.UDP

    @property
    def routed_as_http(self) -> bool:
        """Gets an HTTP connection manager: an outbound virtual host, an inbound HTTP chain.
        HTTP of any kind, and UNKNOWN, which Weft does not sniff."""
        return self.is_http or self is Protocol.UNKNOWN


_HTTP = frozenset(
    {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB, Protocol.HTTP_PROXY}
)
_HTTP2 = frozenset({Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB})
_TCP_PROXIED = frozenset(
    {Protocol.TCP, Protocol.TLS, Protocol.HTTPS, Protocol.MONGO, Protocol.MYSQL, Protocol.REDIS}
)

# Names a user may declare (UNKNOWN is what is left when nobody declares one).
_DECLARABLE = {p.value.lower(): p for p in Protocol if p is not Protocol.UNKNOWN}
_GRPC_WEB_PREFIX = "grpc-web"
# Servers on these ports speak first, which sniffing would break: Istio assumes TCP.
SERVER_FIRST_PORTS = frozenset({25, 53, 3306, 27017})
# Kubernetes' own appProtocol values, as Istio maps them.
_KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": Protocol.HTTP2,  # HTTP/2 over cleartext, with prior knowledge
    "kubernetes.io/ws": Protocol.HTTP,  # WebSocket: an HTTP upgrade
    "kubernetes.io/wss": Protocol.HTTPS,  # WebSocket over TLS the app terminates
}


def protocol_from_port_name(name: str) -> Protocol:
    """Istio's port naming convention: `<protocol>[-<suffix>]`, any case; else UNKNOWN."""
    lowered = name.lower()
    if lowered.startswith(_GRPC_WEB_PREFIX):
        return Protocol.GRPC_WEB
    return _DECLARABLE.get(lowered.split("-", 1)[0], Protocol.UNKNOWN)


def protocol_of_port(declared: str | None, name: str | None) -> Protocol:
    """A ServiceEntry, Gateway or Sidecar port: its `protocol` field, else its name."""
    if declared:
        return Protocol.parse(declared)
    return protocol_from_port_name(name or "")


KubernetesTransport = Literal["TCP", "UDP", "SCTP"]


def protocol_of_kubernetes_port(
    number: int, name: str, app_protocol: str | None, transport: KubernetesTransport = "TCP"
) -> Protocol:
    """A Kubernetes Service port: `appProtocol` when set, else the port name."""
    if transport == "UDP":
        return Protocol.UDP
    if app_protocol is not None and app_protocol in _KUBERNETES_APP_PROTOCOLS:
        return _KUBERNETES_APP_PROTOCOLS[app_protocol]
    found = protocol_from_port_name(app_protocol if app_protocol is not None else name)
    if found is Protocol.UNKNOWN and number in SERVER_FIRST_PORTS:
        return Protocol.TCP
    return found
