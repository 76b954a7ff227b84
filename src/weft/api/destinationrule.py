"""DestinationRule: policies applied to traffic for a service after routing has chosen it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from weft.api.base import IstioModel, LabelSelector
from weft.api.meta import IstioResource
from weft.api.trafficpolicy import TrafficPolicy


class Subset(IstioModel):
    """A named group of a service's endpoints, picked by labels (usually a version)."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleSpec(IstioModel):
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: LabelSelector | None = None


class DestinationRule(IstioResource):
    kind: Literal["DestinationRule"] = "DestinationRule"
    spec: DestinationRuleSpec
