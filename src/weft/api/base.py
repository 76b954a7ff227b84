"""The model base class and the small value types shared by every Istio kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from weft.api.durations import DURATION_HINT, parse_duration


class IstioModel(BaseModel):
    """Base of every Istio message: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


INVALID = "weft_invalid"


def invalid(message: str, hint: str | None = None) -> PydanticCustomError:
    """An error the loader turns into a ConfigProblem with this message and hint."""
    ctx: dict[str, Any] = {"message": message}
    if hint:
        ctx["hint"] = hint
    # The message travels in ctx so braces in user input cannot break the template.
    return PydanticCustomError(INVALID, "{message}", ctx)


# The longest duration protobuf (and so Envoy) can hold: 10,000 years.
MAX_DURATION_SECONDS = 315_576_000_000


def _duration(value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"duration must be a string with a unit, got {value!r}", DURATION_HINT)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise invalid(str(exc), DURATION_HINT) from None
    if seconds > MAX_DURATION_SECONDS:
        raise invalid(f"duration {value!r} is longer than 10000 years", "use a shorter duration")
    return value


def _positive_duration(value: Any) -> str:
    text = _duration(value)
    if parse_duration(text) < 0.001:
        raise invalid(f"duration {text!r} is shorter than 1ms", "use a duration of at least 1ms")
    return text


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise invalid(f"port {value} is out of range 1..65535", "use a port number from 1 to 65535")
    return value


def _percentage(value: float) -> float:
    if not 0.0 <= value <= 100.0:
        raise invalid(f"percentage {value} is out of range 0..100", "use a value from 0 to 100")
    return value


Duration = Annotated[str, BeforeValidator(_duration)]
"""An Istio duration string such as "1.5s"; kept as written, checked by parse_duration."""

PositiveDuration = Annotated[str, BeforeValidator(_positive_duration)]
"""A duration of at least 1ms: where Envoy refuses zero (timeouts, intervals, delays)."""

PortNumber = Annotated[int, AfterValidator(_port)]
# Counts and sizes: Envoy holds them in 32 bits.
NonNegativeInt = Annotated[int, Field(ge=0, le=2**32 - 1)]

ProtocolName = Literal[
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "HTTP_PROXY",
    "MONGO",
    "MYSQL",
    "REDIS",
    "TCP",
    "TLS",
    "UDP",
]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


PortProtocol = Annotated[ProtocolName, BeforeValidator(_upper)]
"""A port protocol by Istio's names; input is case-insensitive, stored upper case."""


class Percent(IstioModel):
    """A percentage from 0 to 100, fractions allowed."""

    value: Annotated[float, AfterValidator(_percentage)] = 0.0


class StringMatch(IstioModel):
    """Exactly one of exact, prefix or regex (RE2 syntax, matched against the whole value)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    def kinds_set(self) -> list[str]:
        return [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]


class PortSelector(IstioModel):
    number: PortNumber | None = None


class Destination(IstioModel):
    """A service in the registry, optionally narrowed to a subset and a port."""

    host: str
    subset: str | None = None
    port: PortSelector | None = None


class WorkloadSelector(IstioModel):
    """Selects workloads by labels (ServiceEntry, Sidecar)."""

    labels: dict[str, str] = Field(default_factory=dict)


class LabelSelector(IstioModel):
    """Selects workloads by labels, as `matchLabels` (DestinationRule)."""

    match_labels: dict[str, str] = Field(default_factory=dict)


class Port(IstioModel):
    """A listener port (Gateway servers, Sidecar listeners)."""

    number: PortNumber | None = None
    protocol: PortProtocol | None = None
    name: str | None = None
    target_port: PortNumber | None = None
