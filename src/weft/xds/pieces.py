"""The pieces a proxy's config is assembled from, cached by exactly their inputs.

What a proxy can reach (outbound clusters, their endpoints, its HTTP routes) depends only on
its view: namespace, the Sidecar that scopes it, whether it holds a certificate (and its
labels, when a VirtualService matches on them). That part is built once per view and shared,
serialized, by every proxy with the same view; the parts that depend on the proxy's own ports
(inbound clusters, listeners) are built per proxy.

Below the views, each service's clusters, each cluster's endpoints and each virtual host are
cached on their own, keyed by exactly the inputs their generator reads, by identity: the
snapshot is immutable and a new snapshot keeps every unchanged part as the same object
(`build_snapshot(previous=...)`, `Snapshot.with_endpoints`). A change therefore regenerates
only what it touched (one virtual host for a VirtualService edit, one cluster's endpoints for
a new instance) and every view is reassembled from serialized pieces. No proxy is ever served
another's config: a key that left out an input would serve stale config, and the tests compare
cached generation against generation from scratch across sequences of changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from weft.api import DestinationRule
from weft.registry.model import Endpoint, Service
from weft.snapshot.proxy import Proxy
from weft.snapshot.snapshot import Snapshot
from weft.snapshot.view import sidecar_for, visible_services
from weft.xds import names, types
from weft.xds.cds import inbound_cluster, service_clusters
from weft.xds.delegation import delegates_of
from weft.xds.eds import load_assignment
from weft.xds.generate import Resources, check_consistent, pack_all, pack_one, rds_names
from weft.xds.lds import generate_listeners
from weft.xds.protos import boolean
from weft.xds.rds import block_all, route_plan, virtual_host


class Ref:
    """An identity key: equal only to a Ref of the same object, which it keeps alive (so its
    id cannot be reused while the key exists). For immutable inputs, identity is equality."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.obj is self.obj


_V = TypeVar("_V")


class Memo(Generic[_V]):
    """Results by their inputs, kept while they are used: what the generations for one
    snapshot did not use is dropped when the next but one begins (`age()` once per snapshot).

    A result is keyed by plain values (`key`) and by the identity of objects (`inputs`); the
    entry holds those objects, so their ids cannot be reused while it exists.
    """

    def __init__(self) -> None:
        self._now: dict[tuple[object, ...], tuple[tuple[object, ...], _V]] = {}
        self._before: dict[tuple[object, ...], tuple[tuple[object, ...], _V]] = {}
        self.hits = 0
        self.misses = 0

    def get(
        self, key: tuple[object, ...], inputs: tuple[object, ...], build: Callable[[], _V]
    ) -> _V:
        full = (*key, *map(id, inputs))
        found = self._now.get(full)
        if found is None:
            found = self._before.pop(full, None)
            if found is None:
                self.misses += 1
                found = (inputs, build())
            else:
                self.hits += 1
            self._now[full] = found
        else:
            self.hits += 1
        return found[1]

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


def view_key(proxy: Proxy, snap: Snapshot) -> tuple[object, ...]:
    """Every proxy property the shared part reads: the namespace (DestinationRule lookup,
    short names), the Sidecar that scopes it, its labels only when some VirtualService matches
    on sourceLabels, whether it has a certificate (mTLS), and its kind."""
    labels = tuple(proxy.labels.items()) if snap.uses_source_labels else ()
    return (proxy.namespace, Ref(sidecar_for(proxy, snap)), labels, proxy.sds, proxy.kind)


@dataclass(frozen=True)
class _Own:
    """What is one proxy's own: its inbound clusters, listeners and the routes they name."""

    inbound: Mapping[str, any_pb2.Any]
    listeners: Resources
    route_names: tuple[str, ...]


class Pieces:
    """The per-service, per-cluster and per-virtual-host caches under the views."""

    def __init__(self) -> None:
        self.clusters: Memo[_ClusterBlock] = Memo()
        self.endpoints: Memo[any_pb2.Any] = Memo()
        self.vhosts: Memo[bytes] = Memo()
        self.own: Memo[_Own] = Memo()
        self.cds: Memo[Resources] = Memo()  # a proxy's whole CDS: shared plus its own

    def age(self) -> None:
        for memo in (self.clusters, self.endpoints, self.vhosts, self.own, self.cds):
            memo.age()


# Which parts of a view each host-scoped snapshot part feeds: after a change to only these,
# a view keeps the rest of what it had (push scope says which snapshot parts changed).
VIEW_INPUTS = {
    "clusters": frozenset({"endpoints"}),  # SANs and DNS targets come from endpoints
    "endpoints": frozenset({"endpoints"}),
    "routes": frozenset({"virtual_services"}),
}


def build_shared(
    proxy: Proxy,
    snap: Snapshot,
    pieces: Pieces | None = None,
    prior: SharedView | None = None,
    changed: frozenset[str] = frozenset(),
    changed_hosts: Collection[str] = (),
) -> SharedView:
    """The view's shared part. With `prior`, the same view's part for the previous snapshot,
    `changed`, the snapshot parts that changed since (only host-scoped ones), and
    `changed_hosts`, the hosts they changed: the parts of the view those do not feed are
    taken over from `prior`, and so is each unchanged host's share of the rest."""
    pieces = pieces or Pieces()
    if prior is not None and not changed & VIEW_INPUTS["clusters"]:
        parts = prior.services
        clusters, eds_names, endpoints = prior.clusters, prior.eds_names, prior.endpoints
    else:
        reuse = {} if prior is None else {p.hostname: p for p in prior.services}
        parts = _outbound(proxy, snap, pieces, reuse, changed_hosts)
        clusters, eds_names, endpoints = _join(parts, prior)
    if prior is not None and not changed & VIEW_INPUTS["routes"]:
        routes = prior.routes
    else:
        routes = Resources.of_packed(
            types.ROUTE, {names.HTTP_PROXY_ROUTE: _routes(proxy, snap, pieces)}
        )
    hosts = prior.hosts if prior is not None else frozenset(p.hostname for p in parts)
    shared = SharedView(clusters, eds_names, endpoints, routes, hosts, parts)
    check_consistent({types.ENDPOINT: endpoints, types.ROUTE: routes}, list(eds_names), [])
    return shared


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
    pieces: Pieces,
    reuse: Mapping[str, _ServicePart],
    changed_hosts: Collection[str],
) -> tuple[_ServicePart, ...]:
    """Clusters and endpoints of each service the proxy sees. `reuse`: parts of the same view
    for the previous snapshot, valid for every host not in `changed_hosts`."""
    trust_domain = snap.mesh.trust_domain
    parts: list[_ServicePart] = []
    for service in visible_services(proxy, snap):
        host = service.hostname
        prior = reuse.get(host)
        if prior is not None and host not in changed_hosts:
            parts.append(prior)
            continue
        dr = snap.destination_rule_for(host, proxy.namespace)
        eps = snap.endpoints_of(host)
        # The key is service_clusters' arguments, exactly.
        block = pieces.clusters.get(
            (trust_domain, proxy.sds),
            (service, dr, eps),
            partial(_cluster_block, service, dr, eps, trust_domain, proxy.sds),
        )
        if prior is not None and block is not prior.clusters and block == prior.clusters:
            block = prior.clusters  # new endpoints, the same clusters (the usual case)
        # load_assignment reads the cluster's DestinationRule (subsets), the service's
        # endpoints, and PeerAuthentications with the root namespace (auto mTLS).
        endpoints = tuple(
            (
                name,
                pieces.endpoints.get(
                    (name, snap.root_namespace),
                    (dr, eps, snap.peer_authentications),
                    partial(_endpoints_of, name, snap, proxy.namespace),
                ),
            )
            for name in block.eds_names
        )
        parts.append(_ServicePart(host, block, endpoints))
    return tuple(parts)


def _cluster_block(
    service: Service,
    dr: DestinationRule | None,
    endpoints: tuple[Endpoint, ...],
    trust_domain: str,
    has_certs: bool,
) -> _ClusterBlock:
    built = service_clusters(service, dr, endpoints, trust_domain, has_certs)
    return _ClusterBlock(
        pack_all(types.CLUSTER, [(c.name, c) for c in built]),
        tuple(c.eds_cluster_config.service_name or c.name for c in built if c.type == c.EDS),
    )


def _endpoints_of(cluster: str, snap: Snapshot, client_namespace: str) -> any_pb2.Any:
    return pack_one(types.ENDPOINT, load_assignment(cluster, snap, client_namespace))


def _routes(proxy: Proxy, snap: Snapshot, pieces: Pieces) -> any_pb2.Any:
    labels = tuple(proxy.labels.items()) if snap.uses_source_labels else ()
    parts: list[bytes] = []
    for service, port, domains in route_plan(proxy, snap):
        bound = snap.virtual_services_for(service.hostname)
        # virtual_host reads the service, port and domains, the first VirtualService bound to
        # the host and the delegate VirtualServices it names, the services and DestinationRules
        # its destinations name, and the proxy's namespace and (for sourceLabels) labels.
        key = (port, domains, proxy.namespace, labels)
        root = bound[0] if bound else None
        delegates = delegates_of(root, snap.virtual_services) if root is not None else ()
        inputs = (service, root, *delegates, snap.services, snap.destination_rules)
        parts.append(
            pieces.vhosts.get(key, inputs, partial(_vhost, service, port, domains, proxy, snap))
        )
    parts.append(_BLOCK_ALL)
    value = route_config_bytes(names.HTTP_PROXY_ROUTE, parts)
    return any_pb2.Any(type_url=types.ROUTE, value=value)


def _vhost(
    service: Service, port: int, domains: tuple[str, ...], proxy: Proxy, snap: Snapshot
) -> bytes:
    serialized: bytes = virtual_host(service, port, domains, proxy, snap).SerializeToString(
        deterministic=True
    )
    return serialized


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


def _own(proxy: Proxy, snap: Snapshot, pieces: Pieces) -> _Own:
    """A proxy's own part. generate_listeners reads the proxy, PeerAuthentications,
    AuthorizationPolicies, RequestAuthentications, JWKS documents, mesh config and root
    namespace: exactly the key."""

    def build() -> _Own:
        listeners = generate_listeners(proxy, snap)
        inbound = [inbound_cluster(p) for p in proxy.inbound]
        return _Own(
            inbound=pack_all(types.CLUSTER, [(c.name, c) for c in inbound]),
            listeners=Resources.of(types.LISTENER, [(x.name, x) for x in listeners]),
            route_names=tuple(sorted(rds_names(listeners))),
        )

    inputs = (
        snap.peer_authentications, snap.authorization_policies, snap.request_authentications,
        snap.jwks, snap.mesh,
    )  # fmt: skip
    return pieces.own.get((proxy.config_key(), snap.root_namespace), inputs, build)


def _all_clusters(
    outbound: Mapping[str, any_pb2.Any], inbound: Mapping[str, any_pb2.Any]
) -> Resources:
    return Resources.of_packed(types.CLUSTER, {**outbound, **inbound})


def generate_with(
    shared: SharedView, proxy: Proxy, snap: Snapshot, pieces: Pieces | None = None
) -> dict[str, Resources]:
    """A proxy's config from its view's shared part plus what is its own."""
    pieces = pieces or Pieces()
    own = _own(proxy, snap, pieces)
    cds = pieces.cds.get(
        (), (shared.clusters, own.inbound), partial(_all_clusters, shared.clusters, own.inbound)
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
