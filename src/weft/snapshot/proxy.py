"""What the control plane knows about one connected proxy, read from its xDS node metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

from weft.contract.node import InboundPort as InboundPort  # a field of Proxy; generators use it
from weft.contract.node import NodeMetadata, is_router
from weft.registry.model import EMPTY_LABELS, frozen_labels


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


def proxy_from_node(node_id: str, metadata: Mapping[str, Any]) -> Proxy:
    """Build a Proxy from node id and metadata (a plain dict from the protobuf Struct);
    MessageError naming the metadata key that is wrong."""
    meta = NodeMetadata.from_node(node_id, metadata)
    return Proxy(
        id=node_id,
        namespace=meta.namespace or "default",
        workload=meta.workload or "",
        service=meta.service or "",
        labels=frozen_labels(meta.labels),
        service_account=meta.service_account or "default",
        ip=meta.instance_ips[0] if meta.instance_ips else "127.0.0.1",
        proxy_port=meta.proxy_port,
        inbound=meta.inbound_ports(),
        kind="router" if is_router(node_id) else "sidecar",
        sds=meta.sds,
        admin_port=meta.admin_port,
        version=meta.version,
    )
