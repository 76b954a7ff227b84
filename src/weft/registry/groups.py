"""Istio's VM flow: a WorkloadGroup is the template an auto-registered WorkloadEntry follows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from weft.api import IstioObject, WorkloadGroup
from weft.api.workload import ReadinessProbe
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


def from_group(workload: Workload, group: WorkloadGroup, account_given: bool) -> Workload:
    """The entry a registration makes under `group`.

    Labels: the group's metadata labels, then its template's, then the workload's own. The
    service account is the template's unless the registration named one (`account_given`).
    """
    spec = group.spec
    labels = dict(spec.metadata.labels) if spec.metadata is not None else {}
    labels.update(spec.template.labels)
    labels.update(workload.labels)
    account = workload.service_account
    if not account_given and spec.template.service_account:
        account = spec.template.service_account
    return replace(
        workload,
        labels=frozen_labels(labels),
        service_account=account,
        group=group.metadata.name,
    )


def group_probe(group: WorkloadGroup | None) -> ReadinessProbe | None:
    """The readiness probe the agent should run."""
    return None if group is None else group.spec.probe
