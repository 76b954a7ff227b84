"""Helpers for security tests: policies from YAML, snapshots holding them."""

from __future__ import annotations

from weft.api import (
    AuthorizationPolicy,
    IstioObject,
    MeshConfig,
    RequestAuthentication,
    load_yaml,
)
from weft.snapshot.build import build_snapshot
from weft.snapshot.snapshot import Snapshot


def objects(text: str) -> list[IstioObject]:
    return load_yaml(text, "policies.yaml")


def snapshot(text: str, *, mesh: MeshConfig | None = None) -> Snapshot:
    return build_snapshot(1, objects(text), {}, {}, mesh=mesh)


def authorization_policies(text: str) -> list[AuthorizationPolicy]:
    return [o for o in objects(text) if isinstance(o, AuthorizationPolicy)]


def request_authentications(text: str) -> list[RequestAuthentication]:
    return [o for o in objects(text) if isinstance(o, RequestAuthentication)]


def policy(
    name: str,
    spec: str,
    *,
    namespace: str = "foo",
    kind: str = "AuthorizationPolicy",
) -> str:
    """One security object as a YAML document; `spec` is flow-style YAML."""
    return f"""---
apiVersion: security.istio.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""
