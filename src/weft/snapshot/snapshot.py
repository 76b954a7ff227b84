"""The immutable, indexed view of the mesh that generators read. A change builds a new one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType

from weft.api import (
    AuthorizationPolicy,
    DestinationRule,
    Gateway,
    MeshConfig,
    PeerAuthentication,
    RequestAuthentication,
    Sidecar,
    VirtualService,
)
from weft.registry.model import Endpoint, Service
from weft.snapshot.dependencies import INDEXES
from weft.snapshot.indexes import (
    DestinationRuleIndex,
    ServiceIndex,
    SidecarIndex,
    VirtualServiceIndex,
)
from weft.snapshot.sources import Sources

_EMPTY: Mapping[str, tuple[Endpoint, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    """Services, endpoints and config at one instant, with their indexes. Immutable.

    The parts are the rows of `weft.snapshot.dependencies.PARTS`; the indexes those of
    `INDEXES`, built when the snapshot is made. `carry`: a previous snapshot whose indexes are
    taken over where the parts they are built from are the same objects.
    """

    version: int = 0
    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))
    endpoints: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=lambda: _EMPTY)
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    request_authentications: tuple[RequestAuthentication, ...] = ()
    mesh: MeshConfig = field(default_factory=MeshConfig)
    # JWKS documents the control plane fetched, by jwksUri (RequestAuthentication).
    jwks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # What it was built from (None when made directly): the next build compares with it.
    sources: Sources | None = field(default=None, compare=False, repr=False)

    vs_index: VirtualServiceIndex = field(init=False, compare=False, repr=False)
    dr_index: DestinationRuleIndex = field(init=False, compare=False, repr=False)
    sidecar_index: SidecarIndex = field(init=False, compare=False, repr=False)
    service_index: ServiceIndex = field(init=False, compare=False, repr=False)
    uses_source_labels: bool = field(init=False, compare=False, repr=False)

    carry: InitVar[Snapshot | None] = None

    def __post_init__(self, carry: Snapshot | None) -> None:
        # Indexes are set once, here, while the snapshot is being made.
        for index in INDEXES:
            if carry is not None and all(
                getattr(carry, part) is getattr(self, part) for part in index.reads
            ):
                value = getattr(carry, index.name)
            else:
                value = index.build(*(getattr(self, part) for part in index.reads))
            object.__setattr__(self, index.name, value)

    @property
    def root_namespace(self) -> str:
        return self.mesh.root_namespace

    def service(self, hostname: str) -> Service | None:
        return self.services.get(hostname)

    def endpoints_of(self, hostname: str) -> tuple[Endpoint, ...]:
        return self.endpoints.get(hostname, ())

    def virtual_services_for(self, hostname: str, gateway: str = "mesh") -> list[VirtualService]:
        """VirtualServices bound to `gateway` whose hosts cover `hostname`, oldest first."""
        return self.vs_index.bound_to(hostname, gateway)

    def destination_rule_for(self, hostname: str, client_namespace: str) -> DestinationRule | None:
        """Istio's lookup order: the client's namespace, then the service's, then the root's."""
        service = self.services.get(hostname)
        return self.dr_index.lookup(
            hostname, client_namespace, service.namespace if service is not None else None
        )
