"""Object identity: Kubernetes-style metadata, the key stores index by, the shared envelope."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from weft.api.base import IstioModel, invalid

GROUP = "networking.istio.io"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha3")
DEFAULT_API_VERSION = API_VERSIONS[0]

SECURITY_GROUP = "security.istio.io"
SECURITY_API_VERSIONS = (f"{SECURITY_GROUP}/v1", f"{SECURITY_GROUP}/v1beta1")
DEFAULT_SECURITY_API_VERSION = SECURITY_API_VERSIONS[0]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, order=True)
class ConfigKey:
    """Identity of one config object; sorts by kind, then namespace, then name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def is_object_name(value: str) -> bool:
    return len(value) <= 253 and bool(_SUBDOMAIN.match(value))


def _object_name(value: str) -> str:
    if not is_object_name(value):
        raise invalid(
            f"name {value!r} is not a valid object name",
            "use lower-case letters, digits, '-' and '.', starting and ending with a letter "
            "or digit, at most 253 characters",
        )
    return value


def _namespace(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise invalid(
            f"namespace {value!r} is not a valid namespace name",
            "use lower-case letters, digits and '-', starting and ending with a letter or "
            "digit, at most 63 characters",
        )
    return value


class ObjectMeta(IstioModel):
    """The part of Kubernetes metadata Weft uses; server-set fields (uid, ...) are dropped."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, AfterValidator(_object_name)]
    namespace: Annotated[str, AfterValidator(_namespace)] = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


def _api_version_hint(versions: tuple[str, ...]) -> str:
    others = versions[1:]
    if not others:
        return f"use {versions[0]}"
    verb = "is" if len(others) == 1 else "are"
    return f"use {versions[0]}; {' and '.join(others)} {verb} also accepted"


class IstioResource(IstioModel):
    """The envelope shared by every top-level kind; subclasses pin `kind` and type `spec`.

    A kind of another API group sets `api_versions` and the `api_version` default to match.
    """

    api_versions: ClassVar[tuple[str, ...]] = API_VERSIONS

    api_version: str = DEFAULT_API_VERSION
    kind: str
    metadata: ObjectMeta

    @field_validator("api_version")
    @classmethod
    def _known_api_version(cls, value: str) -> str:
        if value not in cls.api_versions:
            raise invalid(f"{value!r} is not supported", _api_version_hint(cls.api_versions))
        return value

    @model_validator(mode="before")
    @classmethod
    def _drop_status(cls, data: Any) -> Any:
        # Kubernetes output carries controller-written status; it is never configuration.
        if isinstance(data, dict) and "status" in data:
            return {k: v for k, v in data.items() if k != "status"}
        return data

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(self.kind, self.metadata.namespace, self.metadata.name)

    @classmethod
    def api_group(cls) -> str:
        """The kind's API group, e.g. networking.istio.io."""
        return cls.api_versions[0].split("/", 1)[0]
