"""DestinationRule traffic policy, resolved for one port and subset (Istio's merge order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weft.api import DestinationRule


@dataclass(frozen=True)
class EffectivePolicy:
    """The most specific setting of each part: subset+port, subset, rule+port, rule."""

    load_balancer: Any = None
    connection_pool: Any = None
    outlier_detection: Any = None
    tls: Any = None


_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


def _port_level(policy: Any, port: int) -> Any:
    if policy is None:
        return None
    for setting in policy.port_level_settings or []:
        if setting.port is not None and setting.port.number == port:
            return setting
    return None


def effective_policy(dr: DestinationRule | None, port: int, subset: str = "") -> EffectivePolicy:
    if dr is None:
        return EffectivePolicy()
    top = dr.spec.traffic_policy
    levels: list[Any] = [top, _port_level(top, port)]
    if subset:
        for s in dr.spec.subsets or []:
            if s.name == subset and s.traffic_policy is not None:
                levels += [s.traffic_policy, _port_level(s.traffic_policy, port)]
    chosen: dict[str, Any] = {}
    for level in levels:
        if level is None:
            continue
        for name in _FIELDS:
            value = getattr(level, name, None)
            if value is not None:
                chosen[name] = value
    return EffectivePolicy(**chosen)


def subset_labels(dr: DestinationRule | None, subset: str) -> dict[str, str] | None:
    """Labels of a named subset, or None when the rule does not define it."""
    if dr is None:
        return None
    for s in dr.spec.subsets or []:
        if s.name == subset:
            return dict(s.labels or {})
    return None
