"""DestinationRule traffic policy, resolved for one port and subset (Istio's merge order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weft.api import DestinationRule

_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy of one cluster. As Istio documents, port level settings replace the level
    they belong to as a whole (what they leave out is the default, not inherited), and a
    subset's policy overrides the rule's part by part."""

    load_balancer: Any = None
    connection_pool: Any = None
    outlier_detection: Any = None
    tls: Any = None


def _at_port(policy: Any, port: int) -> tuple[dict[str, Any], bool]:
    """The parts one level sets for `port`, and whether port level settings decided them."""
    if policy is None:
        return {}, False
    for setting in policy.port_level_settings or []:
        if setting.port is not None and setting.port.number == port:
            return {name: getattr(setting, name) for name in _FIELDS}, True
    return {name: getattr(policy, name) for name in _FIELDS}, False


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
    return EffectivePolicy(**chosen)


def subset_labels(dr: DestinationRule | None, subset: str) -> dict[str, str] | None:
    """Labels of a named subset, or None when the rule does not define it."""
    if dr is None:
        return None
    for s in dr.spec.subsets or []:
        if s.name == subset:
            return dict(s.labels or {})
    return None
