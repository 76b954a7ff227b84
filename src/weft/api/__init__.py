"""Istio networking.istio.io and security.istio.io APIs and the mesh config: typed models,
loading from YAML/JSON, validation."""

from weft.api.authorizationpolicy import (
    AuthorizationPolicy,
    AuthorizationPolicySpec,
    Condition,
    Operation,
    Rule,
    Source,
)
from weft.api.base import (
    Destination,
    IstioModel,
    LabelSelector,
    Percent,
    Port,
    PortSelector,
    StringMatch,
    WorkloadSelector,
)
from weft.api.destinationrule import DestinationRule, DestinationRuleSpec, Subset
from weft.api.durations import parse_duration
from weft.api.gateway import Gateway, GatewaySpec, Server, ServerTLSSettings
from weft.api.hosts import fqdn, host_matches
from weft.api.httproute import HTTPMatchRequest, HTTPRoute, HTTPRouteDestination
from weft.api.kinds import KINDS, IstioObject
from weft.api.loader import load_file, load_json, load_yaml, parse_object
from weft.api.meshconfig import (
    EnvoyExtAuthzGrpcProvider,
    EnvoyExtAuthzHttpProvider,
    ExtensionProvider,
    MeshConfig,
    load_mesh_config,
    parse_mesh_config,
)
from weft.api.meta import (
    API_VERSIONS,
    SECURITY_API_VERSIONS,
    ConfigKey,
    IstioResource,
    ObjectMeta,
)
from weft.api.peerauthentication import PeerAuthentication, PeerAuthenticationSpec
from weft.api.policytarget import PolicyTargetReference
from weft.api.requestauthentication import JWTRule, RequestAuthentication, RequestAuthenticationSpec
from weft.api.serialize import dump_json, dump_yaml, to_dict
from weft.api.serviceentry import ServiceEntry, ServiceEntrySpec, ServicePort
from weft.api.sidecar import Sidecar, SidecarSpec
from weft.api.trafficpolicy import ClientTLSSettings, TrafficPolicy
from weft.api.validation import validate
from weft.api.virtualservice import VirtualService, VirtualServiceSpec
from weft.api.workload import (
    WorkloadEntry,
    WorkloadEntrySpec,
    WorkloadGroup,
    WorkloadGroupSpec,
)

__all__ = [
    "API_VERSIONS",
    "KINDS",
    "SECURITY_API_VERSIONS",
    "AuthorizationPolicy",
    "AuthorizationPolicySpec",
    "ClientTLSSettings",
    "Condition",
    "ConfigKey",
    "Destination",
    "DestinationRule",
    "DestinationRuleSpec",
    "EnvoyExtAuthzGrpcProvider",
    "EnvoyExtAuthzHttpProvider",
    "ExtensionProvider",
    "Gateway",
    "GatewaySpec",
    "HTTPMatchRequest",
    "HTTPRoute",
    "HTTPRouteDestination",
    "IstioModel",
    "IstioObject",
    "IstioResource",
    "JWTRule",
    "LabelSelector",
    "MeshConfig",
    "ObjectMeta",
    "Operation",
    "PeerAuthentication",
    "PeerAuthenticationSpec",
    "Percent",
    "PolicyTargetReference",
    "Port",
    "PortSelector",
    "RequestAuthentication",
    "RequestAuthenticationSpec",
    "Rule",
    "Server",
    "ServerTLSSettings",
    "ServiceEntry",
    "ServiceEntrySpec",
    "ServicePort",
    "Sidecar",
    "SidecarSpec",
    "Source",
    "StringMatch",
    "Subset",
    "TrafficPolicy",
    "VirtualService",
    "VirtualServiceSpec",
    "WorkloadEntry",
    "WorkloadEntrySpec",
    "WorkloadGroup",
    "WorkloadGroupSpec",
    "WorkloadSelector",
    "dump_json",
    "dump_yaml",
    "fqdn",
    "host_matches",
    "load_file",
    "load_json",
    "load_mesh_config",
    "load_yaml",
    "parse_duration",
    "parse_mesh_config",
    "parse_object",
    "to_dict",
    "validate",
]
