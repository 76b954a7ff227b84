"""The pieces a proxy's config is assembled from, cached by exactly their inputs.

What a proxy can reach (outbound clusters, their endpoints, its HTTP routes) depends only on
its view: namespace, the Sidecar that scopes it, whether it holds a certificate (and its
labels, when a VirtualService matches on them). That part is built once per view and shared,
serialized, by every proxy with the same view; the parts that depend on the proxy's own ports
(inbound clusters, listeners) are built per proxy.

Below the views, what each proxy sees, each service's clusters, each cluster's endpoints, each
virtual host and each proxy's listeners are cached on their own, keyed by exactly the inputs
their builder reads: the key (`weft.xds.keys`) is the builder's only parameter. Snapshot parts
are held by identity: the snapshot is immutable and a new snapshot keeps every unchanged part
as the same object (`build_snapshot(previous=...)`). A change therefore regenerates
only what it touched (one virtual host for a VirtualService edit, one cluster's endpoints for
a new instance) and every view is reassembled from serialized pieces. No proxy is ever served
another's config: a key that left out an input would serve stale config, and the tests compare
cached generation against generation from scratch across sequences of changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from weft.api import DestinationRule, Sidecar, VirtualService
from weft.registry.model import Service
from weft.snapshot.dependencies import Piece, reads
from weft.snapshot.policies import SecurityPolicies
from weft.snapshot.proxy import Proxy, ProxyShape
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.view import scoped_services, sidecar_for
from weft.xds import names, types
from weft.xds.cds import inbound_cluster, service_clusters
from weft.xds.delegation import delegates_of
from weft.xds.eds import load_assignment
from weft.xds.generate import Resources, check_consistent, pack_all, pack_one, rds_names
from weft.xds.isolate import LeftOutObjects
from weft.xds.keys import (
    ClustersKey,
    EndpointsKey,
    ListenersKey,
    Same,
    VirtualHostKey,
    VisibleKey,
)
from weft.xds.lds import generate_listeners
from weft.xds.protos import boolean
from weft.xds.rds import block_all, route_plan, virtual_host
from weft.xds.routes import RouteTarget

_K = TypeVar("_K")
_V = TypeVar("_V")


class Memo(Generic[_K, _V]):
    """Results by their keys, kept while they are used: what the generations for one snapshot
    did not use is dropped when the next but one begins (`age()` once per snapshot)."""

    def __init__(self) -> None:
        self._now: dict[_K, _V] = {}
        self._before: dict[_K, _V] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: _K, build: Callable[[_K], _V]) -> _V:
        """The result for `key`, built by `build(key)` when there is none."""
        found = self._now.get(key)
        if found is not None:
            self.hits += 1
            return found
        found = self._before.pop(key, None)
        if found is None:
            self.misses += 1
            found = build(key)
        else:
            self.hits += 1
        self._now[key] = found
        return found

    def age(self) -> None:
        self._before = self._now
        self._now = {}

    def __len__(self) -> int:
        return len(self._now) + len(self._before)


@dataclass(frozen=True)
class _ClusterBlock:
    packed: Mapping[str, any_pb2.Any]
    eds_names: tuple[str, ...]


@dataclass(frozen=True)
class _Own:
    """What is one proxy's own: its inbound clusters, listeners and the routes they name."""

    inbound: Mapping[str, any_pb2.Any]
    listeners: Resources
    route_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _AllClustersKey:
    outbound: Same[Mapping[str, any_pb2.Any]]
    inbound: Same[Mapping[str, any_pb2.Any]]


# --- builders: each reads its key and nothing else ------------------------------------------


def build_visible(key: VisibleKey) -> tuple[Service, ...]:
    return scoped_services(key.sidecar.value, key.namespace, key.services.value, key.index.value)


def build_clusters(key: ClustersKey) -> _ClusterBlock:
    built = service_clusters(
        key.service.value, key.rule.value, key.endpoints.value, key.trust_domain, key.has_certs
    )
    return _ClusterBlock(
        pack_all(types.CLUSTER, [(c.name, c) for c in built]),
        tuple(c.eds_cluster_config.service_name or c.name for c in built if c.type == c.EDS),
    )


def build_endpoints(key: EndpointsKey) -> any_pb2.Any:
    assignment = load_assignment(
        key.cluster,
        key.rule.value,
        key.endpoints.value,
        key.peer_authentications.value,
        key.root_namespace,
    )
    return pack_one(types.ENDPOINT, assignment)


def build_virtual_host(key: VirtualHostKey) -> bytes:
    target = RouteTarget(
        key.service.value,
        key.port,
        key.client_namespace,
        dict(key.client_labels),
        key.services.value,
        key.rules.value,
        tuple(d.value for d in key.delegates),
    )
    vhost = virtual_host(target, key.domains, key.virtual_service.value)
    serialized: bytes = vhost.SerializeToString(deterministic=True)
    return serialized


def build_listeners(key: ListenersKey) -> _Own:
    policies = SecurityPolicies(
        key.peer_authentications.value,
        key.authorization_policies.value,
        key.request_authentications.value,
        key.jwks.value,
        key.mesh.value,
    )
    listeners = generate_listeners(key.proxy, policies)
    inbound = [inbound_cluster(p) for p in key.proxy.inbound]
    return _Own(
        inbound=pack_all(types.CLUSTER, [(c.name, c) for c in inbound]),
        listeners=Resources.of(types.LISTENER, [(x.name, x) for x in listeners]),
        route_names=tuple(sorted(rds_names(listeners))),
    )


def _build_all_clusters(key: _AllClustersKey) -> Resources:
    return Resources.of_packed(types.CLUSTER, {**key.outbound.value, **key.inbound.value})


class Pieces:
    """The caches under the views, one per piece, by key. A VirtualService or DestinationRule
    that fails to generate is left out of the piece that uses it and recorded in `left_out`."""

    def __init__(self) -> None:
        self.left_out = LeftOutObjects()
        self.visible: Memo[VisibleKey, tuple[Service, ...]] = Memo()
        self.clusters: Memo[ClustersKey, _ClusterBlock] = Memo()
        self.endpoints: Memo[EndpointsKey, any_pb2.Any] = Memo()
        self.vhosts: Memo[VirtualHostKey, bytes] = Memo()
        self.own: Memo[ListenersKey, _Own] = Memo()
        self.cds: Memo[_AllClustersKey, Resources] = Memo()  # a proxy's CDS: shared and own

    def age(self) -> None:
        for memo in (self.visible, self.clusters, self.endpoints, self.vhosts, self.own, self.cds):
            memo.age()

    def vhost(self, key: VirtualHostKey) -> bytes:
        try:
            return self.vhosts.get(key, build_virtual_host)
        except Exception as e:
            if key.virtual_service.value is None:
                raise
            self.left_out.record(key.virtual_service.value, e)
            return self.vhosts.get(
                replace(key, virtual_service=NO_VIRTUAL_SERVICE), build_virtual_host
            )

    def cluster_block(self, key: ClustersKey) -> _ClusterBlock:
        try:
            return self.clusters.get(key, build_clusters)
        except Exception as e:
            if key.rule.value is None:
                raise
            self.left_out.record(key.rule.value, e)
            return self.clusters.get(replace(key, rule=NO_RULE), build_clusters)

    def assignment(self, key: EndpointsKey) -> any_pb2.Any:
        try:
            return self.endpoints.get(key, build_endpoints)
        except Exception as e:
            if key.rule.value is None:
                raise
            self.left_out.record(key.rule.value, e)
            return self.endpoints.get(replace(key, rule=NO_RULE), build_endpoints)


NO_VIRTUAL_SERVICE: Same[VirtualService | None] = Same(None)
NO_RULE: Same[DestinationRule | None] = Same(None)


# --- views: what proxies of one view share -----------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewKey:
    """Every proxy property the shared part reads: the namespace (DestinationRule lookup,
    short names), the Sidecar that scopes it, its labels only when some VirtualService matches
    on sourceLabels, whether it has a certificate (mTLS), and its kind."""

    namespace: str
    sidecar: Same[Sidecar | None]
    labels: tuple[tuple[str, str], ...]
    sds: bool
    kind: str


def view_key(proxy: Proxy, snap: Snapshot) -> ViewKey:
    labels = tuple(proxy.labels.items()) if snap.uses_source_labels else ()
    return ViewKey(proxy.namespace, Same(sidecar_for(proxy, snap)), labels, proxy.sds, proxy.kind)


@dataclass(frozen=True)
class SharedView:
    """What every proxy with one view gets alike: packed outbound clusters, EDS, routes, and
    the services it sees (push scope: which changes can affect it)."""

    clusters: Mapping[str, any_pb2.Any]
    eds_names: tuple[str, ...]
    endpoints: Resources
    routes: Resources
    hosts: frozenset[str]
    # Per service seen, in order: its clusters and its clusters' endpoints.
    services: tuple[_ServicePart, ...] = ()


@dataclass(frozen=True)
class _ServicePart:
    hostname: str
    clusters: _ClusterBlock
    endpoints: tuple[tuple[str, any_pb2.Any], ...]


# After a change to only these parts, a view keeps the rest of what it had: its clusters and
# endpoints, its routes (by the table of what each piece reads).
CLUSTER_INPUTS = reads(Piece.VISIBLE, Piece.CLUSTERS, Piece.ENDPOINTS)
ROUTE_INPUTS = reads(Piece.VISIBLE, Piece.ROUTES)


def build_shared(
    proxy: Proxy,
    snap: Snapshot,
    pieces: Pieces | None = None,
    prior: SharedView | None = None,
    changed: frozenset[str] = frozenset(),
    changed_hosts: Collection[str] = (),
) -> SharedView:
    """The view's shared part. With `prior`, the same view's part for the previous snapshot,
    `changed`, the snapshot parts that changed since (a narrow change: only parts scoped by
    host), and `changed_hosts`, the hosts they changed: the parts of the view those do not
    feed are taken over from `prior`, and so is each unchanged host's share of the rest."""
    pieces = pieces or Pieces()
    if prior is not None and changed & reads(Piece.VISIBLE):
        prior = None  # what the view sees changed: nothing of it is kept
    visible = _visible(proxy, snap, pieces)
    if prior is not None and not changed & CLUSTER_INPUTS:
        parts = prior.services
        clusters, eds_names, endpoints = prior.clusters, prior.eds_names, prior.endpoints
    else:
        reuse = {} if prior is None else {p.hostname: p for p in prior.services}
        parts = _outbound(proxy, snap, visible, pieces, reuse, changed_hosts)
        clusters, eds_names, endpoints = _join(parts, prior)
    if prior is not None and not changed & ROUTE_INPUTS:
        routes = prior.routes
    else:
        routes = Resources.of_packed(
            types.ROUTE, {names.HTTP_PROXY_ROUTE: _routes(proxy, snap, visible, pieces)}
        )
    hosts = prior.hosts if prior is not None else frozenset(s.hostname for s in visible)
    shared = SharedView(clusters, eds_names, endpoints, routes, hosts, parts)
    check_consistent({types.ENDPOINT: endpoints, types.ROUTE: routes}, list(eds_names), [])
    return shared


def _visible(proxy: Proxy, snap: Snapshot, pieces: Pieces) -> tuple[Service, ...]:
    key = VisibleKey(
        Same(sidecar_for(proxy, snap)),
        proxy.namespace,
        Same(snap.services),
        Same(snap.service_index),
    )
    return pieces.visible.get(key, build_visible)


def _join(
    parts: tuple[_ServicePart, ...], prior: SharedView | None
) -> tuple[Mapping[str, any_pb2.Any], tuple[str, ...], Resources]:
    """The view's clusters and endpoints from its services' parts; what is made of the same
    pieces as `prior`'s is `prior`'s (so every proxy's CDS stays as it was, unhashed)."""
    same_clusters = (
        prior is not None
        and len(parts) == len(prior.services)
        and all(a.clusters is b.clusters for a, b in zip(parts, prior.services, strict=True))
    )
    if same_clusters and prior is not None:
        clusters, eds_names = prior.clusters, prior.eds_names
    else:
        built: dict[str, any_pb2.Any] = {}
        for part in parts:
            built.update(part.clusters.packed)
        clusters, eds_names = built, tuple(n for p in parts for n in p.clusters.eds_names)
    endpoints: dict[str, any_pb2.Any] = {}
    for part in parts:
        endpoints.update(part.endpoints)
    return clusters, eds_names, Resources.of_packed(types.ENDPOINT, endpoints)


def _outbound(
    proxy: Proxy,
    snap: Snapshot,
    visible: tuple[Service, ...],
    pieces: Pieces,
    reuse: Mapping[str, _ServicePart],
    changed_hosts: Collection[str],
) -> tuple[_ServicePart, ...]:
    """Clusters and endpoints of each service the proxy sees. `reuse`: parts of the same view
    for the previous snapshot, valid for every host not in `changed_hosts`."""
    trust_domain = snap.mesh.trust_domain
    peer_authentications = Same(snap.peer_authentications)
    root_namespace = snap.root_namespace
    parts: list[_ServicePart] = []
    for service in visible:
        host = service.hostname
        prior = reuse.get(host)
        if prior is not None and host not in changed_hosts:
            parts.append(prior)
            continue
        rule = Same(snap.destination_rule_for(host, proxy.namespace))
        eps = Same(snap.endpoints_of(host))
        block = pieces.cluster_block(ClustersKey(Same(service), rule, eps, trust_domain, proxy.sds))
        if prior is not None and block is not prior.clusters and block == prior.clusters:
            block = prior.clusters  # new endpoints, the same clusters (the usual case)
        endpoints = tuple(
            (
                name,
                pieces.assignment(
                    EndpointsKey(name, rule, eps, peer_authentications, root_namespace)
                ),
            )
            for name in block.eds_names
        )
        parts.append(_ServicePart(host, block, endpoints))
    return tuple(parts)


def _routes(
    proxy: Proxy, snap: Snapshot, visible: tuple[Service, ...], pieces: Pieces
) -> any_pb2.Any:
    labels = tuple(proxy.labels.items()) if snap.uses_source_labels else ()
    services, rules = Same(snap.services), Same(snap.dr_index)
    parts: list[bytes] = []
    for service, port, domains in route_plan(visible, proxy.namespace):
        bound = snap.virtual_services_for(service.hostname)
        root = bound[0] if bound else None
        delegates = delegates_of(root, snap.virtual_services) if root is not None else ()
        key = VirtualHostKey(
            Same(service),
            port,
            domains,
            proxy.namespace,
            labels,
            Same(root),
            tuple(Same(d) for d in delegates),
            services,
            rules,
        )
        parts.append(pieces.vhost(key))
    parts.append(_BLOCK_ALL)
    value = route_config_bytes(names.HTTP_PROXY_ROUTE, parts)
    return any_pb2.Any(type_url=types.ROUTE, value=value)


_BLOCK_ALL = block_all().SerializeToString(deterministic=True)
_VALIDATE_CLUSTERS_OFF: bytes = route_pb2.RouteConfiguration(
    validate_clusters=boolean(False)
).SerializeToString(deterministic=True)
_VHOSTS_FIELD = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number


def route_config_bytes(name: str, vhosts: Iterable[bytes]) -> bytes:
    """The serialized RouteConfiguration {name, virtual_hosts, validate_clusters: false},
    byte for byte what deterministic serialization of the message gives (fields in number
    order: name 1, virtual_hosts 2, validate_clusters 7), from already serialized virtual
    hosts: a serialized message is the concatenation of its serialized fields."""
    head: bytes = route_pb2.RouteConfiguration(name=name).SerializeToString(deterministic=True)
    tag = _varint(_VHOSTS_FIELD << 3 | 2)  # length-delimited
    body = b"".join(tag + _varint(len(v)) + v for v in vhosts)
    return head + body + _VALIDATE_CLUSTERS_OFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def listeners_key(shape: ProxyShape, snap: Snapshot) -> ListenersKey:
    return ListenersKey(
        shape,
        Same(snap.peer_authentications),
        Same(snap.authorization_policies),
        Same(snap.request_authentications),
        Same(snap.jwks),
        Same(snap.mesh),
    )


def generate_with(
    shared: SharedView, proxy: Proxy, snap: Snapshot, pieces: Pieces | None = None
) -> dict[str, Resources]:
    """A proxy's config from its view's shared part plus what is its own."""
    pieces = pieces or Pieces()
    own = pieces.own.get(listeners_key(proxy.shape, snap), build_listeners)
    cds = pieces.cds.get(
        _AllClustersKey(Same(shared.clusters), Same(own.inbound)), _build_all_clusters
    )
    route_names = list(own.route_names)
    routes = shared.routes
    if set(routes.items) != set(route_names):
        routes = Resources.of_packed(
            types.ROUTE, {n: a for n, a in routes.items.items() if n in route_names}
        )
    out = {
        types.CLUSTER: cds,
        types.ENDPOINT: shared.endpoints,
        types.LISTENER: own.listeners,
        types.ROUTE: routes,
    }
    # The view's own EDS names were checked when it was built (build_shared).
    check_consistent(out, [], route_names)
    return out
