"""Who a proxy says it is: the xDS node id and metadata the agent writes into Envoy's
bootstrap, and the control plane reads from the first request of every ADS stream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from weft.api.protocol import Protocol
from weft.contract.names import (
    LABEL_HINT,
    DnsLabel,
    DnsSubdomain,
    EmptyIsNone,
    IpAddress,
    Labels,
    PortName,
    PortNumber,
    PortProtocol,
    ShortText,
    dns_label_error,
)
from weft.contract.wire import MessageError, WireModel, parse_message
from weft.errors import ConfigProblem

# Node metadata keys. Istio's names where Istio has one; WEFT_* for what local mode adds.
META_NAMESPACE = "NAMESPACE"
META_LABELS = "LABELS"
META_WORKLOAD = "WORKLOAD_NAME"
META_SERVICE_ACCOUNT = "SERVICE_ACCOUNT"
META_INSTANCE_IPS = "INSTANCE_IPS"
META_PROXY_PORT = "WEFT_PROXY_PORT"
META_INBOUND = "WEFT_INBOUND"
META_SERVICE = "WEFT_SERVICE"
META_ADMIN_PORT = "WEFT_ADMIN_PORT"  # Envoy's admin port, for `weft proxy-config secret`
META_SDS = "WEFT_SDS"  # the agent serves certificates over SDS: mesh mTLS is possible
META_VERSION = "ISTIO_VERSION"  # the agent's version (Weft's), as Istio's agents send theirs

MAX_NODE_ID = 1024


@dataclass(frozen=True, order=True)
class InboundPort:
    """A port the workload serves: the mesh reaches it on `inbound_port`, the app on `app_port`."""

    service_port: int
    inbound_port: int
    app_port: int
    protocol: Protocol = Protocol.HTTP
    name: str = "http"

    def __post_init__(self) -> None:
        # Callers outside the type checker may still say "GRPC"; inside it is the model.
        object.__setattr__(self, "protocol", Protocol.of(self.protocol))


class _InboundPortMetadata(WireModel):
    """An InboundPort as written in WEFT_INBOUND."""

    # Metadata crosses a protobuf Struct, where every number is a float: 9080.0 is 9080.
    model_config = ConfigDict(strict=False)

    service_port: PortNumber
    inbound_port: PortNumber
    app_port: PortNumber
    protocol: PortProtocol = "HTTP"
    name: PortName = "http"

    def port(self) -> InboundPort:
        return InboundPort(
            self.service_port,
            self.inbound_port,
            self.app_port,
            Protocol.parse(self.protocol),
            self.name,
        )


def _port_fields(value: Any) -> Any:
    return asdict(value) if isinstance(value, InboundPort) else value


def _ip_list(value: Any) -> Any:
    # Istio writes INSTANCE_IPS as one comma-separated string.
    if isinstance(value, str):
        return [ip.strip() for ip in value.split(",")] if value else []
    return value


class NodeMetadata(BaseModel):
    """The metadata keys Weft reads; Envoy and Istio's agents add others, which are left alone.

    Numbers and booleans are accepted as written by either (`15001`, `15001.0`, `"15001"`;
    `true`, `"true"`).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    namespace: Annotated[DnsLabel | None, EmptyIsNone] = Field(None, alias=META_NAMESPACE)
    workload: Annotated[DnsSubdomain | None, EmptyIsNone] = Field(None, alias=META_WORKLOAD)
    service: Annotated[DnsLabel | None, EmptyIsNone] = Field(None, alias=META_SERVICE)
    labels: Labels = Field(default_factory=dict, alias=META_LABELS)
    service_account: Annotated[DnsSubdomain | None, EmptyIsNone] = Field(
        None, alias=META_SERVICE_ACCOUNT
    )
    instance_ips: Annotated[list[IpAddress], BeforeValidator(_ip_list)] = Field(
        default_factory=list, alias=META_INSTANCE_IPS
    )
    proxy_port: Annotated[PortNumber | None, EmptyIsNone] = Field(None, alias=META_PROXY_PORT)
    inbound: list[Annotated[_InboundPortMetadata, BeforeValidator(_port_fields)]] = Field(
        default_factory=list, alias=META_INBOUND
    )
    sds: bool = Field(False, alias=META_SDS)
    admin_port: Annotated[PortNumber | None, EmptyIsNone] = Field(None, alias=META_ADMIN_PORT)
    version: ShortText = Field("", alias=META_VERSION)

    @model_validator(mode="after")
    def _distinct_inbound_ports(self) -> NodeMetadata:
        for attr in ("service_port", "inbound_port"):
            seen = [getattr(p, attr) for p in self.inbound]
            twice = sorted({p for p in seen if seen.count(p) > 1})
            if twice:
                raise ValueError(f"{META_INBOUND} lists {attr} {twice[0]} more than once")
        return self

    def inbound_ports(self) -> tuple[InboundPort, ...]:
        """The inbound ports, in port order."""
        return tuple(sorted(p.port() for p in self.inbound))

    def to_struct(self) -> dict[str, Any]:
        """The metadata as the agent writes it into the bootstrap's node."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data[META_INSTANCE_IPS] = ",".join(self.instance_ips)
        data[META_INBOUND] = [p.to_wire() for p in self.inbound]
        return data

    @classmethod
    def from_node(cls, node_id: str, metadata: Mapping[str, Any]) -> NodeMetadata:
        """Read a node's metadata, its namespace from an Istio-style id when the metadata has
        none; MessageError naming the metadata key that is wrong, and what is allowed."""
        if not node_id or len(node_id) > MAX_NODE_ID or not node_id.isprintable():
            raise MessageError(
                "node id",
                [
                    ConfigProblem(
                        f"{node_id[:80]!r} is not a usable node id",
                        hint=f"use printable text, 1 to {MAX_NODE_ID} characters",
                    )
                ],
            )
        meta = parse_message(cls, metadata, f"node metadata of {node_id}")
        namespace = namespace_from_node_id(node_id)
        if meta.namespace is None and namespace is not None:
            error = dns_label_error(namespace)
            if error is not None:
                raise MessageError(
                    "node id",
                    [ConfigProblem(f"{node_id}: namespace {error}", hint=f"use {LABEL_HINT}")],
                )
            meta = meta.model_copy(update={"namespace": namespace})
        return meta


def namespace_from_node_id(node_id: str) -> str | None:
    # Istio's node id: TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local
    parts = node_id.split("~")
    if len(parts) == 4 and "." in parts[2]:
        return parts[2].rsplit(".", 1)[1]
    return None


def is_router(node_id: str) -> bool:
    """Istio's node type: `router` is a gateway, anything else a sidecar."""
    return node_id.startswith("router~")


def node_id(workload: str, namespace: str, ip: str = "127.0.0.1") -> str:
    return f"sidecar~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local"
