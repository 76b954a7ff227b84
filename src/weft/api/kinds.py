"""The set of Istio kinds Weft understands, by name."""

from __future__ import annotations

from weft.api.authorizationpolicy import AuthorizationPolicy
from weft.api.destinationrule import DestinationRule
from weft.api.gateway import Gateway
from weft.api.peerauthentication import PeerAuthentication
from weft.api.requestauthentication import RequestAuthentication
from weft.api.serviceentry import ServiceEntry
from weft.api.sidecar import Sidecar
from weft.api.virtualservice import VirtualService
from weft.api.workload import WorkloadEntry, WorkloadGroup

IstioObject = (
    VirtualService
    | DestinationRule
    | ServiceEntry
    | WorkloadEntry
    | WorkloadGroup
    | Gateway
    | Sidecar
    | PeerAuthentication
    | AuthorizationPolicy
    | RequestAuthentication
)

KINDS: dict[str, type[IstioObject]] = {
    cls.__name__: cls
    for cls in (
        VirtualService,
        DestinationRule,
        ServiceEntry,
        WorkloadEntry,
        WorkloadGroup,
        Gateway,
        Sidecar,
        PeerAuthentication,
        AuthorizationPolicy,
        RequestAuthentication,
    )
}
