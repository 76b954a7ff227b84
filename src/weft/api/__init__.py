"""Istio networking.istio.io API: typed models, loading from YAML/JSON, validation."""

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
from weft.api.meta import API_VERSIONS, ConfigKey, IstioResource, ObjectMeta
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
    "ClientTLSSettings",
    "ConfigKey",
    "Destination",
    "DestinationRule",
    "DestinationRuleSpec",
    "Gateway",
    "GatewaySpec",
    "HTTPMatchRequest",
    "HTTPRoute",
    "HTTPRouteDestination",
    "IstioModel",
    "IstioObject",
    "IstioResource",
    "LabelSelector",
    "ObjectMeta",
    "Percent",
    "Port",
    "PortSelector",
    "Server",
    "ServerTLSSettings",
    "ServiceEntry",
    "ServiceEntrySpec",
    "ServicePort",
    "Sidecar",
    "SidecarSpec",
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
    "load_yaml",
    "parse_duration",
    "parse_object",
    "to_dict",
    "validate",
]
