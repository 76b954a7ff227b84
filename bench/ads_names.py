"""The names an ADS load stream follows up on, read from xDS payloads: a Cluster's EDS name and
a Listener's RDS route names. Payloads are parsed only as far as those names need."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Distinct cluster payloads remembered for name lookups; cleared when exceeded.
NAME_CACHE_LIMIT = 200_000


def _head_classes() -> tuple[Any, Any]:
    """Messages with only the Cluster fields EDS subscription needs; the rest stays unparsed.

    Cluster: name = 1, type = 2 (EDS = 3), eds_cluster_config = 3 {service_name = 2}.
    """
    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="bench_adsload_heads.proto", package="benchadsload", syntax="proto3"
    )
    eds = file.message_type.add(name="EdsHead")
    eds.field.add(name="service_name", number=2, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    cluster = file.message_type.add(name="ClusterHead")
    cluster.field.add(name="name", number=1, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    cluster.field.add(name="type", number=2, type=proto.TYPE_INT32, label=proto.LABEL_OPTIONAL)
    cluster.field.add(
        name="eds_cluster_config",
        number=3,
        type=proto.TYPE_MESSAGE,
        type_name=".benchadsload.EdsHead",
        label=proto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("benchadsload.ClusterHead")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("benchadsload.EdsHead")),
    )


ClusterHead, _ = _head_classes()
EDS_TYPE = 3


class Names:
    """EDS names of clusters and route names of listeners, remembered per serialized payload:
    alike proxies get byte-identical resources, so each is parsed once."""

    def __init__(self) -> None:
        self._clusters: dict[bytes, tuple[str, ...]] = {}
        self._listeners: dict[bytes, tuple[str, ...]] = {}

    def cluster_eds(self, value: bytes) -> tuple[str, ...]:
        """The EDS name a serialized Cluster asks for: one, or none if it is not EDS."""
        names = self._clusters.get(value)
        if names is None:
            if len(self._clusters) > NAME_CACHE_LIMIT:
                self._clusters.clear()
            head = ClusterHead.FromString(value)
            names = ()
            if head.type == EDS_TYPE:
                names = (sys.intern(head.eds_cluster_config.service_name or head.name),)
            self._clusters[value] = names
        return names

    def listener_routes(self, value: bytes) -> tuple[str, ...]:
        """The route names a serialized Listener's HttpConnectionManagers ask RDS for."""
        names = self._listeners.get(value)
        if names is None:
            if len(self._listeners) > NAME_CACHE_LIMIT:
                self._listeners.clear()
            names = self._listeners[value] = _listener_routes(value)
        return names

    def eds_names(self, resources: Iterable[Any]) -> tuple[str, ...]:
        return tuple(sorted({n for packed in resources for n in self.cluster_eds(packed.value)}))

    def route_names(self, resources: Iterable[Any]) -> tuple[str, ...]:
        found = {n for packed in resources for n in self.listener_routes(packed.value)}
        return tuple(sorted(found))


def _listener_routes(value: bytes) -> tuple[str, ...]:
    listener = listener_pb2.Listener.FromString(value)
    found = set()
    for chain in [*listener.filter_chains, listener.default_filter_chain]:
        for f in chain.filters:
            if f.typed_config.type_url.endswith(".HttpConnectionManager"):
                manager = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                if manager.HasField("rds"):
                    found.add(sys.intern(manager.rds.route_config_name))
    return tuple(sorted(found))
