"""What delta responses need per packed resource, computed once for every proxy that gets
it: its version, the Resource a delta response carries, a cluster's EDS name. The caches age
with pushes, so what no proxy holds any more is forgotten."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from weft.xds.generate import Resources

_K = TypeVar("_K")
_V = TypeVar("_V")


class Aged(Generic[_K, _V]):
    """A cache that forgets what was not used since the one-before-last `age()`: the server
    ages its caches at every push, so what no proxy needs any more goes within two pushes."""

    def __init__(self) -> None:
        self._now: dict[_K, _V] = {}
        self._before: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        found = self._now.get(key)
        if found is None:
            found = self._before.pop(key, None)
            if found is not None:
                self._now[key] = found
        return found

    def put(self, key: _K, value: _V) -> _V:
        self._now[key] = value
        return value

    def age(self) -> None:
        self._before = self._now
        self._now = {}

    def __len__(self) -> int:
        return len(self._now) + len(self._before)


class ResourceVersions:
    """Per packed resource, computed once for every proxy that gets it (proxies share packed
    resources, weft.xds.pieces): its version (a hash of its bytes), the Resource a delta
    response carries, and for a cluster its EDS name. Keyed by the packed object's id; each
    entry holds the object, so the id stays its own while the entry lives."""

    def __init__(self) -> None:
        self._versions: Aged[int, tuple[any_pb2.Any, str]] = Aged()
        self._resources: Aged[tuple[int, str], tuple[any_pb2.Any, discovery_pb2.Resource]] = Aged()
        self._eds: Aged[int, tuple[any_pb2.Any, str | None]] = Aged()

    def age(self) -> None:
        for cache in (self._versions, self._resources, self._eds):
            cache.age()

    def of(self, resources: Resources) -> Mapping[str, str]:
        return _Versions(resources.items, self)

    def version(self, packed: any_pb2.Any) -> str:
        found = self._versions.get(id(packed))
        if found is None:
            version = hashlib.sha256(packed.value).hexdigest()[:16]
            found = self._versions.put(id(packed), (packed, version))
        return found[1]

    def resource(self, name: str, packed: any_pb2.Any) -> discovery_pb2.Resource:
        """The resource as a delta response carries it."""
        found = self._resources.get((id(packed), name))
        if found is None:
            made = discovery_pb2.Resource(name=name, version=self.version(packed), resource=packed)
            found = self._resources.put((id(packed), name), (packed, made))
        return found[1]

    def eds_name(self, packed: any_pb2.Any) -> str | None:
        """The EDS service name of a packed cluster, or None if it is not an EDS cluster."""
        found = self._eds.get(id(packed))
        if found is None:
            cluster = cluster_pb2.Cluster()
            packed.Unpack(cluster)
            name = None
            if cluster.type == cluster_pb2.Cluster.EDS:
                name = cluster.eds_cluster_config.service_name or cluster.name
            found = self._eds.put(id(packed), (packed, name))
        return found[1]


class _Versions(Mapping[str, str]):
    """name -> version of one type's resources, read through the shared cache."""

    __slots__ = ("_cache", "_items")

    def __init__(self, items: Mapping[str, any_pb2.Any], cache: ResourceVersions) -> None:
        self._items = items
        self._cache = cache

    def __getitem__(self, name: str) -> str:
        return self._cache.version(self._items[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
