"""Istio's VM flow: a WorkloadGroup is the template an auto-registered WorkloadEntry follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from weft.api import IstioObject, WorkloadGroup
from weft.registry.local import Workload
from weft.registry.model import frozen_labels


def find_group(objects: Iterable[IstioObject], namespace: str, name: str) -> WorkloadGroup | None:
    for obj in objects:
        if (
            isinstance(obj, WorkloadGroup)
            and obj.metadata.namespace == namespace
            and obj.metadata.name == name
        ):
            return obj
    return None


def from_group(workload: Workload, group: WorkloadGroup, explicit: Mapping[str, Any]) -> Workload:
    """The entry a registration makes under `group`.

    Labels: the group's metadata labels, then its template's, then the workload's own. The
    service account is the template's unless the registration named one.
    """
    spec = group.spec
    labels = dict(spec.metadata.labels) if spec.metadata is not None else {}
    labels.update(spec.template.labels)
    labels.update(workload.labels)
    account = workload.service_account
    if not explicit.get("serviceAccount") and spec.template.service_account:
        account = spec.template.service_account
    return replace(
        workload,
        labels=frozen_labels(labels),
        service_account=account,
        group=group.metadata.name,
    )


def group_probe(group: WorkloadGroup | None) -> dict[str, Any] | None:
    """The readiness probe the agent should run, in Istio's field names."""
    if group is None or group.spec.probe is None:
        return None
    return group.spec.probe.model_dump(by_alias=True, exclude_none=True, mode="json")
