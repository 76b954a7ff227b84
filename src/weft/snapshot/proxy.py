"""What the control plane knows about one connected proxy, read from its xDS node metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

from weft.api.protocol import Protocol
from weft.registry.model import EMPTY_LABELS, frozen_labels

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

    def to_metadata(self) -> dict[str, Any]:
        return {
            "servicePort": self.service_port,
            "inboundPort": self.inbound_port,
            "appPort": self.app_port,
            "protocol": self.protocol.value,
            "name": self.name,
        }


class ProxyShape(NamedTuple):
    """What generated config may depend on of one proxy: a cache key part, and what the
    per-proxy generators (listeners, inbound clusters) are given. A named tuple: one is made
    for every connecting proxy and looked up for every response, at C speed."""

    namespace: str
    service: str
    label_items: tuple[tuple[str, str], ...]
    service_account: str
    ip: str
    proxy_port: int | None
    inbound: tuple[InboundPort, ...]
    kind: Literal["sidecar", "router"]
    sds: bool

    @property
    def labels(self) -> Mapping[str, str]:
        return frozen_labels(dict(self.label_items))


@dataclass(frozen=True)
class Proxy:
    """One sidecar's identity and shape. Generators take it as an explicit input."""

    id: str
    namespace: str = "default"
    workload: str = ""
    service: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = "default"
    ip: str = "127.0.0.1"
    proxy_port: int | None = None
    inbound: tuple[InboundPort, ...] = ()
    kind: Literal["sidecar", "router"] = "sidecar"
    sds: bool = False
    admin_port: int | None = None  # not a generator input: not in its shape
    version: str = ""  # the agent's, for metrics and status: not a generator input either

    def config_key(self) -> ProxyShape:
        """Everything about this proxy that generated config may depend on (for caching)."""
        return self.shape

    @cached_property
    def shape(self) -> ProxyShape:
        return ProxyShape(
            namespace=self.namespace,
            service=self.service,
            label_items=tuple(self.labels.items()),
            service_account=self.service_account,
            ip=self.ip,
            proxy_port=self.proxy_port,
            inbound=self.inbound,
            kind=self.kind,
            sds=self.sds,
        )


def _as_int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    return int(value)


def proxy_from_node(node_id: str, metadata: Mapping[str, Any]) -> Proxy:
    """Build a Proxy from node id and metadata (a plain dict from the protobuf Struct)."""
    namespace = str(metadata.get(META_NAMESPACE) or _namespace_from_id(node_id) or "default")
    inbound = tuple(
        sorted(
            InboundPort(
                service_port=int(p["servicePort"]),
                inbound_port=int(p["inboundPort"]),
                app_port=int(p["appPort"]),
                protocol=Protocol.parse(str(p.get("protocol", "HTTP"))),
                name=str(p.get("name", "http")),
            )
            for p in metadata.get(META_INBOUND) or []
        )
    )
    ips = str(metadata.get(META_INSTANCE_IPS) or "127.0.0.1").split(",")
    return Proxy(
        id=node_id,
        namespace=namespace,
        workload=str(metadata.get(META_WORKLOAD) or ""),
        service=str(metadata.get(META_SERVICE) or ""),
        labels=frozen_labels(
            {str(k): str(v) for k, v in (metadata.get(META_LABELS) or {}).items()}
        ),
        service_account=str(metadata.get(META_SERVICE_ACCOUNT) or "default"),
        ip=ips[0],
        proxy_port=_as_int(metadata.get(META_PROXY_PORT)),
        inbound=inbound,
        kind="router" if node_id.startswith("router~") else "sidecar",
        sds=str(metadata.get(META_SDS, "")).lower() == "true",
        admin_port=_as_int(metadata.get(META_ADMIN_PORT)),
        version=str(metadata.get(META_VERSION) or ""),
    )


def _namespace_from_id(node_id: str) -> str | None:
    # Istio's node id: TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local
    parts = node_id.split("~")
    if len(parts) == 4 and "." in parts[2]:
        return parts[2].rsplit(".", 1)[1]
    return None


def node_id(workload: str, namespace: str, ip: str = "127.0.0.1") -> str:
    return f"sidecar~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local"
