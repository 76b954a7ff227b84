"""The pieces a proxy's config is assembled from, and their caches: each piece has a key
(`weft.xds.keys`) and a builder that takes the key and nothing else. A VirtualService or
DestinationRule that fails to generate is left out of the piece that uses it and reported
(`weft.xds.isolate`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Generic, TypeVar

from google.protobuf import any_pb2

from weft.api import DestinationRule, VirtualService
from weft.registry.model import Service
from weft.snapshot.policies import SecurityPolicies
from weft.snapshot.view import scoped_services
from weft.xds import types
from weft.xds.cds import inbound_cluster, service_clusters
from weft.xds.eds import load_assignment
from weft.xds.generate import Resources, pack_all, pack_one, rds_names
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
from weft.xds.rds import virtual_host
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
class ClusterBlock:
    packed: Mapping[str, any_pb2.Any]
    eds_names: tuple[str, ...]


@dataclass(frozen=True)
class OwnPart:
    """What is one proxy's own: its inbound clusters, listeners and the routes they name."""

    inbound: Mapping[str, any_pb2.Any]
    listeners: Resources
    route_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AllClustersKey:
    outbound: Same[Mapping[str, any_pb2.Any]]
    inbound: Same[Mapping[str, any_pb2.Any]]


# --- builders: each reads its key and nothing else ------------------------------------------


def build_visible(key: VisibleKey) -> tuple[Service, ...]:
    return scoped_services(key.sidecar.value, key.namespace, key.services.value, key.index.value)


def build_clusters(key: ClustersKey) -> ClusterBlock:
    built = service_clusters(
        key.service.value, key.rule.value, key.endpoints.value, key.trust_domain, key.has_certs
    )
    return ClusterBlock(
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


def build_listeners(key: ListenersKey) -> OwnPart:
    policies = SecurityPolicies(
        key.peer_authentications.value,
        key.authorization_policies.value,
        key.request_authentications.value,
        key.jwks.value,
        key.mesh.value,
    )
    listeners = generate_listeners(key.proxy, policies)
    inbound = [inbound_cluster(p) for p in key.proxy.inbound]
    return OwnPart(
        inbound=pack_all(types.CLUSTER, [(c.name, c) for c in inbound]),
        listeners=Resources.of(types.LISTENER, [(x.name, x) for x in listeners]),
        route_names=tuple(sorted(rds_names(listeners))),
    )


def build_all_clusters(key: AllClustersKey) -> Resources:
    return Resources.of_packed(types.CLUSTER, {**key.outbound.value, **key.inbound.value})


class Pieces:
    """The caches under the views, one per piece, by key. A VirtualService or DestinationRule
    that fails to generate is left out of the piece that uses it and recorded in `left_out`."""

    def __init__(self) -> None:
        self.left_out = LeftOutObjects()
        self.visible: Memo[VisibleKey, tuple[Service, ...]] = Memo()
        self.clusters: Memo[ClustersKey, ClusterBlock] = Memo()
        self.endpoints: Memo[EndpointsKey, any_pb2.Any] = Memo()
        self.vhosts: Memo[VirtualHostKey, bytes] = Memo()
        self.own: Memo[ListenersKey, OwnPart] = Memo()
        self.cds: Memo[AllClustersKey, Resources] = Memo()  # a proxy's CDS: shared and own

    def age(self) -> None:
        for memo in (self.visible, self.clusters, self.endpoints, self.vhosts, self.own, self.cds):
            memo.age()

    def vhost(self, key: VirtualHostKey) -> bytes:
        vs = key.virtual_service.value
        without = partial(replace, key, virtual_service=NO_VIRTUAL_SERVICE, delegates=())
        return self._leaving_out(self.vhosts, key, build_virtual_host, vs, without)

    def cluster_block(self, key: ClustersKey) -> ClusterBlock:
        without = partial(replace, key, rule=NO_RULE)
        return self._leaving_out(self.clusters, key, build_clusters, key.rule.value, without)

    def assignment(self, key: EndpointsKey) -> any_pb2.Any:
        without = partial(replace, key, rule=NO_RULE)
        return self._leaving_out(self.endpoints, key, build_endpoints, key.rule.value, without)

    def _leaving_out(
        self,
        memo: Memo[_K, _V],
        key: _K,
        build: Callable[[_K], _V],
        culprit: VirtualService | DestinationRule | None,
        without: Callable[[], _K],
    ) -> _V:
        """The piece for `key`; if building it fails, the piece without `culprit` (the one
        object it reads that can fail), and `culprit` is recorded as left out."""
        try:
            return memo.get(key, build)
        except Exception as e:
            if culprit is None:
                raise
            self.left_out.record(culprit, e)
            return memo.get(without(), build)


NO_VIRTUAL_SERVICE: Same[VirtualService | None] = Same(None)
NO_RULE: Same[DestinationRule | None] = Same(None)
