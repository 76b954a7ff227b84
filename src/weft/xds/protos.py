"""Small builders for protobuf values used across generators."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2, message, wrappers_pb2
from google.protobuf.struct_pb2 import Struct

from weft.api.durations import parse_duration


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    whole = int(seconds)
    d.seconds = whole
    d.nanos = round((seconds - whole) * 1e9)
    return d


def istio_duration(text: str) -> duration_pb2.Duration:
    return duration(parse_duration(text))


def u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def boolean(value: bool) -> wrappers_pb2.BoolValue:
    return wrappers_pb2.BoolValue(value=value)


def pack(msg: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def struct(data: dict[str, object]) -> Struct:
    s = Struct()
    s.update(data)
    return s
