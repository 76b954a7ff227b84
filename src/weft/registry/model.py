"""The service model every discovery source produces: services, their ports, and endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from weft.api.protocol import Protocol

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})
# On every workload that has a sidecar able to speak mesh mTLS (Istio's label).
TLS_MODE_LABEL = "security.istio.io/tlsMode"


def frozen_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    """An immutable, hashable-by-content view of labels."""
    return MappingProxyType(dict(sorted((labels or {}).items())))


@dataclass(frozen=True, order=True)
class ServicePort:
    """One port a service offers; `protocol` decides HTTP routing versus TCP proxying."""

    port: int
    name: str = "http"
    protocol: Protocol = Protocol.HTTP

    def __post_init__(self) -> None:
        # Callers outside the type checker may still say "TCP"; inside it is the model.
        object.__setattr__(self, "protocol", Protocol.of(self.protocol))


@dataclass(frozen=True)
class Service:
    """A service by its fully qualified host name, e.g. `reviews.default.svc.cluster.local`."""

    hostname: str
    namespace: str
    ports: tuple[ServicePort, ...]
    name: str = ""
    mesh_external: bool = False
    resolution: Literal["STATIC", "DNS", "NONE"] = "STATIC"
    source: str = "local"  # which discovery source produced it

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)

    @property
    def short_name(self) -> str:
        return self.name or self.hostname.split(".", 1)[0]


@dataclass(frozen=True)
class Endpoint:
    """One instance of a service at an address; `ports` maps service port number -> target port."""

    service: str  # hostname of the service it belongs to
    address: str
    ports: Mapping[int, int]
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    service_account: str = "default"
    namespace: str = "default"
    workload: str = ""  # name of the workload (WorkloadEntry) behind it
    healthy: bool = True
    weight: int = 1
    locality: str = ""

    def target_port(self, service_port: int) -> int | None:
        return self.ports.get(service_port)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when every label in `selector` is on this endpoint (Istio subset semantics)."""
        return all(self.labels.get(k) == v for k, v in selector.items())
