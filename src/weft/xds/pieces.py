"""Views: a proxy's config assembled from pieces (`weft.xds.builders`), cached by exactly
their inputs.

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

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from weft.api import Sidecar
from weft.registry.model import Service
from weft.snapshot.dependencies import Piece, reads
from weft.snapshot.proxy import Proxy, ProxyShape
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.view import sidecar_for
from weft.xds import names, types
from weft.xds.builders import (
    AllClustersKey,
    ClusterBlock,
    OwnPart,
    Pieces,
    build_all_clusters,
    build_listeners,
    build_visible,
)
from weft.xds.delegation import delegates_of
from weft.xds.generate import Resources, check_consistent
from weft.xds.keys import (
    ClustersKey,
    EndpointsKey,
    ListenersKey,
    Same,
    VirtualHostKey,
    VisibleKey,
)
from weft.xds.protos import boolean
from weft.xds.rds import block_all, route_plan

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
    # Looked up on every push for every proxy: hashed once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.namespace, self.sidecar, self.labels, self.sds, self.kind)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash


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
    # Per virtual host, in order: (host, port, the serialized virtual host).
    vhosts: tuple[tuple[str, int, bytes], ...] = ()
    # The services it sees, in order.
    visible: tuple[Service, ...] = ()


@dataclass(frozen=True)
class _ServicePart:
    hostname: str
    clusters: ClusterBlock
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
    # A narrow change leaves what the view sees as it was.
    visible = prior.visible if prior is not None else _visible(proxy, snap, pieces)
    if prior is not None and not changed & CLUSTER_INPUTS:
        parts = prior.services
        clusters, eds_names, endpoints = prior.clusters, prior.eds_names, prior.endpoints
    else:
        reuse = {} if prior is None else {p.hostname: p for p in prior.services}
        parts = _outbound(proxy, snap, visible, pieces, reuse, changed_hosts)
        clusters, eds_names, endpoints = _join(parts, prior)
    if prior is not None and not changed & ROUTE_INPUTS:
        routes, vhosts = prior.routes, prior.vhosts
    else:
        vhosts = _routes(proxy, snap, visible, pieces, prior, changed_hosts)
        table = any_pb2.Any(
            type_url=types.ROUTE,
            value=route_config_bytes(
                names.HTTP_PROXY_ROUTE, [*(v for _, _, v in vhosts), _BLOCK_ALL]
            ),
        )
        routes = Resources.of_packed(types.ROUTE, {names.HTTP_PROXY_ROUTE: table})
    hosts = prior.hosts if prior is not None else frozenset(s.hostname for s in visible)
    shared = SharedView(clusters, eds_names, endpoints, routes, hosts, parts, vhosts, visible)
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
    proxy: Proxy,
    snap: Snapshot,
    visible: tuple[Service, ...],
    pieces: Pieces,
    prior: SharedView | None,
    changed_hosts: Collection[str],
) -> tuple[tuple[str, int, bytes], ...]:
    """The view's virtual hosts, in order. With `prior` (a narrow change: what the view sees
    is the same, so are its virtual hosts' order and domains), each host the change did not
    touch keeps its virtual host; the others are looked up by key."""
    reuse = {} if prior is None else {(h, p): v for h, p, v in prior.vhosts}
    labels = tuple(proxy.labels.items()) if snap.uses_source_labels else ()
    services, rules = Same(snap.services), Same(snap.dr_index)
    out: list[tuple[str, int, bytes]] = []
    for service, port, domains in route_plan(visible, proxy.namespace):
        host = service.hostname
        kept = reuse.get((host, port))
        if kept is not None and host not in changed_hosts:
            out.append((host, port, kept))
            continue
        bound = snap.virtual_services_for(host)
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
        out.append((host, port, pieces.vhost(key)))
    return tuple(out)


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


def own_part(proxy: Proxy, snap: Snapshot, pieces: Pieces) -> OwnPart:
    """A proxy's own part: its listeners, inbound clusters and the routes they name."""
    return pieces.own.get(listeners_key(proxy.shape, snap), build_listeners)


def generate_with(shared: SharedView, own: OwnPart, pieces: Pieces) -> dict[str, Resources]:
    """A proxy's config from its view's shared part plus what is its own."""
    cds = pieces.cds.get(
        AllClustersKey(Same(shared.clusters), Same(own.inbound)), build_all_clusters
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
