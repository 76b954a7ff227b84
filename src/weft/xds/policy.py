"""DestinationRule traffic policy, resolved for one port and subset (Istio's merge order)."""

from __future__ import annotations

from dataclasses import dataclass

from weft.api import DestinationRule
from weft.api.trafficpolicy import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    TrafficPolicy,
)

_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")
# One level's parts, by field name (a value of one of EffectivePolicy's field types).
_Parts = dict[
    str, LoadBalancerSettings | ConnectionPoolSettings | OutlierDetection | ClientTLSSettings | None
]


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy of one cluster. As Istio documents, port level settings replace the level
    they belong to as a whole (what they leave out is the default, not inherited), and a
    subset's policy overrides the rule's part by part."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


def _at_port(policy: TrafficPolicy | None, port: int) -> tuple[_Parts, bool]:
    """The parts one level sets for `port`, and whether port level settings decided them."""
    if policy is None:
        return {}, False
    for setting in policy.port_level_settings or []:
        if setting.port is not None and setting.port.number == port:
            return _parts(setting), True
    return _parts(policy), False


def _parts(level: TrafficPolicy | PortTrafficPolicy) -> _Parts:
    return {name: getattr(level, name) for name in _FIELDS}


def effective_policy(dr: DestinationRule | None, port: int, subset: str = "") -> EffectivePolicy:
    if dr is None:
        return EffectivePolicy()
    chosen, _ = _at_port(dr.spec.traffic_policy, port)
    if subset:
        for s in dr.spec.subsets or []:
            if s.name == subset and s.traffic_policy is not None:
                parts, whole = _at_port(s.traffic_policy, port)
                for name, value in parts.items():
                    if value is not None or whole:
                        chosen[name] = value
    return EffectivePolicy(**chosen)  # type: ignore[arg-type]  # each part by its name


def subset_labels(dr: DestinationRule | None, subset: str) -> dict[str, str] | None:
    """Labels of a named subset, or None when the rule does not define it."""
    if dr is None:
        return None
    for s in dr.spec.subsets or []:
        if s.name == subset:
            return dict(s.labels or {})
    return None
