"""Istio's mesh config (the `mesh` YAML istiod reads): the part Weft uses, the rest tolerated."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, ConfigDict, Field, PrivateAttr, ValidationError

from weft.api.base import Duration, IstioModel, PortNumber, invalid
from weft.api.hosts import host_error
from weft.api.pydantic_errors import problems_from_validation_error
from weft.api.validation_common import is_namespace, problem
from weft.errors import ConfigError, ConfigProblem

logger = logging.getLogger(__name__)

MESH_CONFIG_KIND = "MeshConfig"
"""The name problems use for the mesh config; it is not a Kubernetes kind."""


def _status_code(value: Any) -> int:
    # Istio spells statusOnError as a string ("500"); a bare number is just as clear.
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 100 <= int(text) <= 599:
        raise invalid(
            f"{value!r} is not an HTTP status code",
            "use a status code from 100 to 599, such as '403' or '500'",
        )
    return int(text)


StatusCode = Annotated[Any, AfterValidator(_status_code)]


class RequestBody(IstioModel):
    """How much of the request body is sent to the authorization service."""

    max_request_bytes: Annotated[int, Field(ge=1)] | None = None
    allow_partial_message: bool = False
    pack_as_bytes: bool = False


class EnvoyExtAuthzHttpProvider(IstioModel):
    """An HTTP authorization service that CUSTOM AuthorizationPolicies can delegate to."""

    service: str
    port: PortNumber
    timeout: Duration | None = None
    path_prefix: str | None = None
    fail_open: bool = False
    status_on_error: StatusCode | None = None
    include_request_headers_in_check: list[str] = Field(default_factory=list)
    include_headers_in_check: list[str] = Field(default_factory=list)  # Istio's older name
    include_additional_headers_in_check: dict[str, str] = Field(default_factory=dict)
    include_request_body_in_check: RequestBody | None = None
    headers_to_upstream_on_allow: list[str] = Field(default_factory=list)
    headers_to_downstream_on_allow: list[str] = Field(default_factory=list)
    headers_to_downstream_on_deny: list[str] = Field(default_factory=list)


class EnvoyExtAuthzGrpcProvider(IstioModel):
    """A gRPC (envoy.service.auth.v3) authorization service."""

    service: str
    port: PortNumber
    timeout: Duration | None = None
    fail_open: bool = False
    status_on_error: StatusCode | None = None
    include_request_body_in_check: RequestBody | None = None


class ExtensionProvider(IstioModel):
    """A named provider. Only the ext_authz kinds are used; others (tracing, logging) are kept."""

    model_config = ConfigDict(extra="allow")

    name: str
    envoy_ext_authz_http: EnvoyExtAuthzHttpProvider | None = None
    envoy_ext_authz_grpc: EnvoyExtAuthzGrpcProvider | None = None

    def kinds_set(self) -> list[str]:
        kinds = [
            alias
            for alias, value in (
                ("envoyExtAuthzHttp", self.envoy_ext_authz_http),
                ("envoyExtAuthzGrpc", self.envoy_ext_authz_grpc),
            )
            if value is not None
        ]
        return kinds + sorted(self.model_extra or {})


class MeshOutboundTrafficPolicy(IstioModel):
    mode: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"


class MeshConfig(IstioModel):
    """Mesh-wide settings. Unknown top-level fields are accepted and listed in `warnings`:
    Istio's MeshConfig has far more settings than Weft acts on."""

    model_config = ConfigDict(extra="allow")

    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    extension_providers: list[ExtensionProvider] = Field(default_factory=list)
    default_config: dict[str, Any] = Field(default_factory=dict)
    outbound_traffic_policy: MeshOutboundTrafficPolicy = Field(
        default_factory=MeshOutboundTrafficPolicy
    )
    enable_auto_mtls: bool = True

    _warnings: tuple[str, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        found = [
            f"unknown field '{name}' is ignored (Weft does not use this mesh setting)"
            for name in sorted(self.model_extra or {})
        ]
        for i, provider in enumerate(self.extension_providers):
            for name in sorted(provider.model_extra or {}):
                found.append(
                    f"extensionProviders[{i}].{name}: provider kind '{name}' is not used by Weft"
                )
        self._warnings = tuple(found)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Settings that were accepted but have no effect in Weft."""
        return self._warnings

    def provider(self, name: str) -> ExtensionProvider | None:
        for provider in self.extension_providers:
            if provider.name == name:
                return provider
        return None


# --- checks a schema cannot express ----------------------------------------------------

_TRUST_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def validate_mesh_config(mesh: MeshConfig) -> list[ConfigProblem]:
    """Every semantic problem with the mesh config, each with its field path and a fix."""
    problems: list[ConfigProblem] = []
    if not _TRUST_DOMAIN.match(mesh.trust_domain):
        problems.append(
            problem(
                "trustDomain",
                f"{mesh.trust_domain!r} is not a trust domain",
                "use a DNS-like name such as 'cluster.local' or 'prod.example.com'",
            )
        )
    if not is_namespace(mesh.root_namespace):
        problems.append(
            problem(
                "rootNamespace",
                f"{mesh.root_namespace!r} is not a namespace name",
                "use lower-case letters, digits and '-', such as 'istio-system'",
            )
        )
    seen: dict[str, int] = {}
    for i, provider in enumerate(mesh.extension_providers):
        problems.extend(_provider(f"extensionProviders[{i}]", provider, seen, i))
    return problems


def _provider(
    field: str, provider: ExtensionProvider, seen: dict[str, int], index: int
) -> Iterator[ConfigProblem]:
    if not provider.name:
        yield problem(f"{field}.name", "provider has no name", "name it, e.g. 'ext-authz'")
    elif provider.name in seen:
        yield problem(
            f"{field}.name",
            f"provider name {provider.name!r} is already used by "
            f"extensionProviders[{seen[provider.name]}]",
            "give each provider a unique name",
        )
    else:
        seen[provider.name] = index
    kinds = provider.kinds_set()
    if len(kinds) != 1:
        yield problem(
            field,
            f"sets {len(kinds)} provider kinds ({', '.join(kinds) or 'none'}); "
            "a provider takes exactly one",
            "keep one of envoyExtAuthzHttp, envoyExtAuthzGrpc, ... per provider",
        )
    http = provider.envoy_ext_authz_http
    if http is not None:
        yield from _service(f"{field}.envoyExtAuthzHttp.service", http.service)
        if http.path_prefix is not None and not http.path_prefix.startswith("/"):
            yield problem(
                f"{field}.envoyExtAuthzHttp.pathPrefix",
                f"path prefix {http.path_prefix!r} does not start with '/'",
                "write it as '/check'",
            )
        for name in (
            "include_request_headers_in_check",
            "include_headers_in_check",
            "headers_to_upstream_on_allow",
            "headers_to_downstream_on_allow",
            "headers_to_downstream_on_deny",
        ):
            alias = EnvoyExtAuthzHttpProvider.model_fields[name].alias or name
            for j, header in enumerate(getattr(http, name)):
                if not header or header == "**":
                    yield problem(
                        f"{field}.envoyExtAuthzHttp.{alias}[{j}]",
                        f"{header!r} is not a header name or pattern",
                        "use a header name, 'prefix*' or '*suffix'",
                    )
    grpc = provider.envoy_ext_authz_grpc
    if grpc is not None:
        yield from _service(f"{field}.envoyExtAuthzGrpc.service", grpc.service)


def _service(field: str, value: str) -> Iterator[ConfigProblem]:
    """Istio's provider service: "[namespace/]hostname"."""
    namespace, _, host = value.rpartition("/")
    if namespace and not is_namespace(namespace):
        yield problem(field, f"{namespace!r} in {value!r} is not a namespace")
    error = host_error(host, allow_wildcard=False) if host else "service is empty"
    if error is not None:
        yield problem(
            field,
            error,
            "use the service's hostname, such as 'ext-authz.foo.svc.cluster.local'",
        )


def provider_host(service: str) -> str:
    """The hostname part of a provider's "[namespace/]hostname" service."""
    return service.rpartition("/")[2]


# --- loading ---------------------------------------------------------------------------


def parse_mesh_config(text: str, source: str) -> MeshConfig:
    """The mesh config in `text`: Istio's mesh YAML, or a ConfigMap carrying it under data.mesh."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            [ConfigProblem(f"YAML syntax error: {exc}", source=source, kind=MESH_CONFIG_KIND)]
        ) from None
    data = _unwrap_config_map(data, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    f"expected a mapping of mesh settings, found {type(data).__name__}",
                    source=source,
                    kind=MESH_CONFIG_KIND,
                    hint="write settings as 'trustDomain: cluster.local' lines",
                )
            ]
        )
    try:
        mesh = MeshConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [_locate(p, source) for p in problems_from_validation_error(exc, MeshConfig)]
        ) from None
    problems = [_locate(p, source) for p in validate_mesh_config(mesh)]
    if problems:
        raise ConfigError(problems)
    for warning in mesh.warnings:
        logger.warning("%s: %s", source, warning)
    return mesh


def load_mesh_config(path: str | Path) -> MeshConfig:
    """Read and check a mesh config file; ConfigError names the file, field and fix."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [
                ConfigProblem(
                    f"cannot read mesh config: {reason}",
                    source=source,
                    kind=MESH_CONFIG_KIND,
                    hint="point at a readable UTF-8 YAML file",
                )
            ]
        ) from None
    return parse_mesh_config(text, source)


def _unwrap_config_map(data: Any, source: str) -> Any:
    if not (isinstance(data, dict) and data.get("kind") == "ConfigMap"):
        return data
    inner = (data.get("data") or {}).get("mesh")
    if not isinstance(inner, str):
        raise ConfigError(
            [
                ConfigProblem(
                    "ConfigMap has no 'mesh' entry under data",
                    source=source,
                    kind=MESH_CONFIG_KIND,
                    field="data.mesh",
                    hint="put the mesh YAML under data.mesh, as in Istio's 'istio' ConfigMap",
                )
            ]
        )
    try:
        return yaml.safe_load(inner)
    except yaml.YAMLError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    f"YAML syntax error in data.mesh: {exc}",
                    source=source,
                    kind=MESH_CONFIG_KIND,
                )
            ]
        ) from None


def _locate(problem: ConfigProblem, source: str) -> ConfigProblem:
    return replace(problem, source=source, kind=MESH_CONFIG_KIND)
