"""Delegate VirtualServices: a root's HTTP route hands its requests to the routes of another
VirtualService (one without hosts), merged under the root route's matches as Istio does.

Pure functions of API models. What a root's routes depend on: the root, and each VirtualService
its `delegate`s name (`delegates_of`), present or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from weft.api import Destination, HTTPMatchRequest, HTTPRoute, StringMatch, VirtualService
from weft.api.hosts import fqdn

# What a delegate route takes from the root route when it does not set it itself.
_INHERITED = (
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrors",
    "mirror_percent",
    "mirror_percentage",
    "cors_policy",
    "headers",
)


@dataclass(frozen=True)
class HTTPRule:
    """One HTTP route as a sidecar applies it: `owner` resolves its short host names and
    `name` names it when the route has no name of its own."""

    owner: VirtualService
    name: str
    http: HTTPRoute


def http_rules(root: VirtualService, virtual_services: Iterable[VirtualService]) -> list[HTTPRule]:
    """The root's HTTP routes in order, each delegating route replaced by the delegate's
    routes merged under it. A delegate that is missing, not exported to the root's namespace
    or has hosts contributes nothing; so does a delegate route whose matches conflict with
    the root route's (Istio ignores it)."""
    ns, name = root.metadata.namespace, root.metadata.name
    rules: list[HTTPRule] = []
    delegates: Mapping[tuple[str, str], VirtualService] | None = None
    for i, http in enumerate(root.spec.http):
        if http.delegate is None:
            rules.append(HTTPRule(root, f"{ns}/{name}[{i}]", http))
            continue
        if delegates is None:
            delegates = _delegate_index(virtual_services)
        delegate = delegates.get(_target(root, http))
        if delegate is None or not _exported(delegate, ns):
            continue
        parent = _qualified(http, ns)
        d_ns, d_name = delegate.metadata.namespace, delegate.metadata.name
        for j, child in enumerate(delegate.spec.http):
            merged = merge_route(parent, _qualified(child, d_ns))
            if merged is not None:
                rules.append(HTTPRule(delegate, f"{ns}/{name}[{i}]/{d_ns}/{d_name}[{j}]", merged))
    return rules


def delegates_of(
    root: VirtualService, virtual_services: Iterable[VirtualService]
) -> tuple[VirtualService, ...]:
    """The delegate VirtualServices the root's routes name and that exist: with the root,
    everything its routes are made of."""
    wanted = {_target(root, http) for http in root.spec.http if http.delegate is not None}
    if not wanted:
        return ()
    index = _delegate_index(virtual_services)
    return tuple(index[key] for key in sorted(wanted) if key in index)


def _target(root: VirtualService, http: HTTPRoute) -> tuple[str, str]:
    assert http.delegate is not None
    return (http.delegate.namespace or root.metadata.namespace, http.delegate.name)


def _delegate_index(
    virtual_services: Iterable[VirtualService],
) -> dict[tuple[str, str], VirtualService]:
    # Only a VirtualService without hosts can be a delegate.
    return {
        (vs.metadata.namespace, vs.metadata.name): vs
        for vs in virtual_services
        if not vs.spec.hosts
    }


def _exported(delegate: VirtualService, namespace: str) -> bool:
    export_to = delegate.spec.export_to
    if not export_to or "*" in export_to or namespace in export_to:
        return True
    return "." in export_to and delegate.metadata.namespace == namespace


def _qualified(http: HTTPRoute, namespace: str) -> HTTPRoute:
    """The route with every host it sends to written in full, so that it means the same
    whichever VirtualService it ends up in."""

    def full(d: Destination) -> Destination:
        return d.model_copy(update={"host": fqdn(d.host, namespace)})

    return http.model_copy(
        update={
            "route": [
                r.model_copy(update={"destination": full(r.destination)}) for r in http.route
            ],
            "mirror": full(http.mirror) if http.mirror is not None else None,
            "mirrors": [
                m.model_copy(update={"destination": full(m.destination)}) for m in http.mirrors
            ],
        }
    )


def merge_route(root: HTTPRoute, delegate: HTTPRoute) -> HTTPRoute | None:
    """A delegate route under its root route, or None when their matches conflict."""
    matches = merge_matches(root.match, delegate.match)
    if matches is None:
        return None
    update: dict[str, object] = {"match": matches, "name": _joined(root.name, delegate.name)}
    for field in _INHERITED:
        if not getattr(delegate, field):
            update[field] = getattr(root, field)
    return delegate.model_copy(update=update)


def merge_matches(
    root: list[HTTPMatchRequest], delegate: list[HTTPMatchRequest]
) -> list[HTTPMatchRequest] | None:
    """Each delegate match narrowed by every root match it fits in; None when a delegate
    match fits in none of them (the delegate route must match a subset of the root's)."""
    if not root:
        return delegate
    if not delegate:
        return root
    merged: list[HTTPMatchRequest] = []
    for leaf in delegate:
        fits = [_merge_match(r, leaf) for r in root if not _conflict(r, leaf)]
        if not fits:
            return None
        merged += fits
    return merged


def _merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    update: dict[str, object] = {"name": _joined(root.name, leaf.name)}
    for field in ("uri", "scheme", "method", "authority", "port", "source_namespace"):
        if getattr(leaf, field) is None:
            update[field] = getattr(root, field)
    if leaf.stat_prefix is None:
        update["stat_prefix"] = root.stat_prefix
    for field in ("headers", "without_headers", "query_params", "source_labels"):
        update[field] = {**getattr(root, field), **getattr(leaf, field)}
    if not leaf.gateways:
        update["gateways"] = root.gateways
    return leaf.model_copy(update=update)


def _conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """Whether `leaf` can match a request `root` does not."""
    for field in ("uri", "scheme", "method", "authority"):
        if _string_conflict(getattr(root, field), getattr(leaf, field)):
            return True
    for field in ("headers", "without_headers", "query_params"):
        outer: Mapping[str, StringMatch] = getattr(root, field)
        for key, value in getattr(leaf, field).items():
            if _string_conflict(outer.get(key), value):
                return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port is not None and leaf.port is not None and root.port != leaf.port:
        return True
    if root.source_namespace is not None and leaf.source_namespace != root.source_namespace:
        return True
    if any(root.source_labels.get(k, v) != v for k, v in leaf.source_labels.items()):
        return True
    return bool(root.gateways and leaf.gateways and not set(leaf.gateways) <= set(root.gateways))


def _string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Whether `leaf` may match a value `root` does not (regexes are not compared: a regex
    on either side with any other condition on the other is a conflict)."""
    if root is None or leaf is None:
        return False
    if root.regex is not None or leaf.regex is not None:
        return bool(root.kinds_set() and leaf.kinds_set())
    if root.exact is not None:
        return leaf.exact != root.exact
    if root.prefix is not None:
        value = leaf.exact if leaf.exact is not None else leaf.prefix
        return value is None or not value.startswith(root.prefix)
    return False


def _joined(root: str | None, leaf: str | None) -> str | None:
    if root and leaf:
        return f"{root}-{leaf}"
    return leaf or root
