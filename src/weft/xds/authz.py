"""AuthorizationPolicy -> Envoy RBAC (and ext_authz) filters for one inbound listener.

Istio's evaluation order, one filter per action:
  AUDIT  (RBAC action LOG: marks matching requests for access logs, decides nothing; first, so
          it sees requests the later filters refuse)
  CUSTOM (ext_authz, run only for requests a CUSTOM rule matches; see authz_custom.py)
  DENY   (any matching rule -> 403)
  ALLOW  (present whenever an ALLOW policy applies: no matching rule -> 403. Without ALLOW
          policies there is no such filter and everything not denied passes)

Rules are translated for one listener port: a rule that cannot match on it (its `ports` are
other ports) is left out. An ALLOW policy whose rules all drop out still makes the ALLOW filter
exist, so the port allows nothing, which is what Istio's port-matching rules amount to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac

from weft.api import AuthorizationPolicy, MeshConfig
from weft.api.authorizationpolicy import Action, Rule, parse_condition_key
from weft.xds.authz_custom import RBAC_FILTER, custom_filters
from weft.xds.authz_matchers import (
    PERMISSIONS,
    PRINCIPALS,
    Permission,
    Principal,
    RuleContext,
    SkipRule,
)
from weft.xds.authz_permissions import (
    PERMISSION_ATTRIBUTES,
    condition_permission,
    operation_permission,
)
from weft.xds.authz_principals import condition_principal, source_principal
from weft.xds.protos import pack

logger = logging.getLogger(__name__)

NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
_RBAC_ACTIONS = {
    "ALLOW": rbac_pb2.RBAC.ALLOW,
    "DENY": rbac_pb2.RBAC.DENY,
    "AUDIT": rbac_pb2.RBAC.LOG,
}
EnvoyPolicies = dict[str, rbac_pb2.Policy]


def rule_name(policy: AuthorizationPolicy, index: int) -> str:
    """Istio's name for one rule's Envoy policy, so config dumps read the same."""
    meta = policy.metadata
    return f"ns[{meta.namespace}]-policy[{meta.name}]-rule[{index}]"


def rule_policy(ctx: RuleContext, rule: Rule) -> rbac_pb2.Policy | None:
    """One rule as an Envoy policy, or None when it cannot match on this listener.

    Raises SkipRule when the rule needs what the listener cannot see (HTTP on TCP).
    """
    principals: list[Principal | None] = []
    permissions: list[Permission | None] = []
    if rule.from_ is not None:
        principals.append(
            PRINCIPALS.any_of(source_principal(ctx, f.source) for f in rule.from_ if f.source)
        )
    if rule.to is not None:
        permissions.append(
            PERMISSIONS.any_of(
                operation_permission(ctx, t.operation) for t in rule.to if t.operation
            )
        )
    for condition in rule.when:
        parsed = parse_condition_key(condition.key)
        if parsed is None:  # refused at load time; never guess at a condition's meaning
            raise SkipRule(f"unknown condition key {condition.key!r}")
        args = (ctx, condition.key, parsed, condition.values, condition.not_values)
        if parsed.attribute in PERMISSION_ATTRIBUTES:
            permissions.append(condition_permission(*args))
        else:
            principals.append(condition_principal(*args))
    principal = PRINCIPALS.all_of(principals)
    permission = PERMISSIONS.all_of(permissions)
    if principal is None or permission is None:
        return None
    return rbac_pb2.Policy(permissions=[permission], principals=[principal])


def envoy_policies(
    policies: Iterable[AuthorizationPolicy],
    trust_domain: str,
    port: int,
    *,
    tcp: bool = False,
    widen_unsupported: bool = False,
) -> EnvoyPolicies:
    """Every rule of `policies` that can match on this port, by Istio's rule name."""
    found: EnvoyPolicies = {}
    for policy in policies:
        for i, rule in enumerate(policy.spec.rules):
            name = rule_name(policy, i)
            ctx = RuleContext(trust_domain, port, tcp, widen_unsupported, name)
            try:
                built = rule_policy(ctx, rule)
            except SkipRule as exc:
                logger.warning("%s: not enforced on TCP port %d (%s)", name, port, exc)
                continue
            if built is not None:
                found[name] = built
    return found


def _by_action(
    policies: Sequence[AuthorizationPolicy], action: Action
) -> list[AuthorizationPolicy]:
    return [p for p in policies if p.spec.action == action]


def http_rbac_filters(
    policies: Sequence[AuthorizationPolicy],
    trust_domain: str,
    port: int,
    *,
    mesh: MeshConfig | None = None,
) -> list[hcm.HttpFilter]:
    """The authorization filters of an HTTP listener for workload `port`, in Istio's order.

    `policies` are those that apply to the workload (authorization_policies_for). CUSTOM
    policies need their provider from `mesh`; one that names an unknown provider denies the
    requests its rules match, rather than letting them through unchecked.
    """
    filters: list[hcm.HttpFilter] = []
    audit = envoy_policies(_by_action(policies, "AUDIT"), trust_domain, port)
    if audit:
        filters.append(_http_rbac("AUDIT", audit))
    deny = envoy_policies(_by_action(policies, "DENY"), trust_domain, port)
    for provider_name, rules in _custom_rules(policies, trust_domain, port).items():
        provider = mesh.provider(provider_name) if mesh is not None else None
        if provider is None or (
            provider.envoy_ext_authz_http is None and provider.envoy_ext_authz_grpc is None
        ):
            logger.warning(
                "CUSTOM provider %r is not an ext_authz provider in the mesh config; "
                "requests its rules match are denied",
                provider_name,
            )
            deny.update({f"{name}-provider[{provider_name}]": p for name, p in rules.items()})
            continue
        filters.extend(custom_filters(provider, rules))
    if deny:
        filters.append(_http_rbac("DENY", deny))
    allow = _by_action(policies, "ALLOW")
    if allow:
        filters.append(_http_rbac("ALLOW", envoy_policies(allow, trust_domain, port)))
    return filters


def _custom_rules(
    policies: Sequence[AuthorizationPolicy], trust_domain: str, port: int
) -> dict[str, EnvoyPolicies]:
    by_provider: dict[str, list[AuthorizationPolicy]] = {}
    for policy in _by_action(policies, "CUSTOM"):
        name = policy.spec.provider.name if policy.spec.provider is not None else ""
        by_provider.setdefault(name, []).append(policy)
    grouped = {
        name: envoy_policies(group, trust_domain, port) for name, group in by_provider.items()
    }
    return {name: rules for name, rules in sorted(grouped.items()) if rules}


def _stat_prefix(action: str) -> str:
    return f"authz_{action.lower()}_"


def _http_rbac(action: str, policies: EnvoyPolicies) -> hcm.HttpFilter:
    config = http_rbac.RBAC(
        rules=rbac_pb2.RBAC(action=_RBAC_ACTIONS[action], policies=policies),
        rules_stat_prefix=_stat_prefix(action),
    )
    return hcm.HttpFilter(name=RBAC_FILTER, typed_config=pack(config))


def network_rbac_filters(
    policies: Sequence[AuthorizationPolicy], trust_domain: str, port: int
) -> list[listener_components_pb2.Filter]:
    """The authorization filters of a plain TCP listener for workload `port`.

    HTTP-only fields cannot be checked here: an ALLOW rule using them is dropped (it matches
    nothing); a DENY or AUDIT rule loses just those fields (it matches more). CUSTOM policies
    are not enforced on TCP (Envoy's network ext_authz is not generated); that is logged.
    """
    for policy in _by_action(policies, "CUSTOM"):
        logger.warning(
            "CUSTOM AuthorizationPolicy %s/%s is not enforced on TCP port %d",
            policy.metadata.namespace,
            policy.metadata.name,
            port,
        )
    filters: list[listener_components_pb2.Filter] = []
    for action in ("AUDIT", "DENY"):
        rules = envoy_policies(
            _by_action(policies, action), trust_domain, port, tcp=True, widen_unsupported=True
        )
        if rules:
            filters.append(_network_rbac(action, rules))
    allow = _by_action(policies, "ALLOW")
    if allow:
        rules = envoy_policies(allow, trust_domain, port, tcp=True)
        filters.append(_network_rbac("ALLOW", rules))
    return filters


def _network_rbac(action: str, policies: EnvoyPolicies) -> listener_components_pb2.Filter:
    config = network_rbac.RBAC(
        rules=rbac_pb2.RBAC(action=_RBAC_ACTIONS[action], policies=policies),
        stat_prefix=f"tcp.authz_{action.lower()}",
    )
    return listener_components_pb2.Filter(name=NETWORK_RBAC_FILTER, typed_config=pack(config))
