"""Local discovery as `weft run` drives it: registrations become services and endpoints."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from weft.registry.local import LocalRegistry, Workload, WorkloadPort
from weft.registry.model import ServicePort, frozen_labels

REVIEWS = "reviews.default.svc.cluster.local"


class FakeClock:
    """A clock the test moves by hand, so TTL expiry needs no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def workload(
    name: str = "reviews-v1",
    service: str = "reviews",
    ports: tuple[WorkloadPort, ...] = (WorkloadPort(9080, 20001),),
    namespace: str = "default",
    **labels: str,
) -> Workload:
    return Workload(
        name=name,
        namespace=namespace,
        service=service,
        address="127.0.0.1",
        ports=ports,
        labels=frozen_labels(labels or {"app": service}),
        service_account=f"bookinfo-{service}",
    )


def registration(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "reviews-v1",
        "namespace": "default",
        "service": "reviews",
        "address": "127.0.0.1",
        "ports": [{"servicePort": 9080, "targetPort": 20001}],
        "labels": {"app": "reviews", "version": "v1"},
        "serviceAccount": "bookinfo-reviews",
    }
    data.update(overrides)
    return data


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock, changes: list[str]) -> LocalRegistry:
    reg = LocalRegistry(ttl=15.0, clock=clock)
    reg.subscribe(lambda: changes.append("changed"))
    return reg


# --- register / report / deregister ----------------------------------------------------------


def test_register_makes_a_service_and_tells_subscribers(
    registry: LocalRegistry, changes: list[str]
) -> None:
    assert registry.register(workload()) is True
    assert changes == ["changed"]
    assert list(registry.services()) == [REVIEWS]
    (ep,) = registry.endpoints()[REVIEWS]
    assert (ep.address, dict(ep.ports), ep.workload) == ("127.0.0.1", {9080: 20001}, "reviews-v1")


def test_registering_the_same_workload_again_is_not_a_change(
    registry: LocalRegistry, changes: list[str]
) -> None:
    registry.register(workload())
    assert registry.register(workload()) is False
    assert changes == ["changed"]


def test_registering_with_new_details_is_a_change(
    registry: LocalRegistry, changes: list[str]
) -> None:
    registry.register(workload())
    assert registry.register(workload(ports=(WorkloadPort(9080, 20009),))) is True
    assert changes == ["changed", "changed"]
    (ep,) = registry.endpoints()[REVIEWS]
    assert dict(ep.ports) == {9080: 20009}


def test_report_changes_health_only_when_it_differs(
    registry: LocalRegistry, changes: list[str]
) -> None:
    registry.register(workload())
    assert registry.report("default", "reviews-v1", healthy=True) is False
    assert changes == ["changed"]
    assert registry.report("default", "reviews-v1", healthy=False) is True
    assert changes == ["changed", "changed"]
    # Unhealthy workloads stay registered (kept but not served).
    (ep,) = registry.endpoints()[REVIEWS]
    assert ep.healthy is False
    assert registry.report("default", "reviews-v1", healthy=False) is False
    assert len(changes) == 2


def test_report_for_an_unknown_workload_raises_key_error(registry: LocalRegistry) -> None:
    with pytest.raises(KeyError):
        registry.report("default", "nobody", healthy=True)


def test_deregister_removes_the_service_with_its_last_workload(
    registry: LocalRegistry, changes: list[str]
) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20002),)))
    assert registry.deregister("default", "reviews-v1") is True
    assert [ep.workload for ep in registry.endpoints()[REVIEWS]] == ["reviews-v2"]
    assert registry.deregister("default", "reviews-v2") is True
    assert registry.services() == {}
    assert registry.endpoints() == {}
    assert len(changes) == 4


def test_deregistering_an_unknown_workload_is_not_a_change(
    registry: LocalRegistry, changes: list[str]
) -> None:
    assert registry.deregister("default", "nobody") is False
    assert changes == []


def test_same_name_in_two_namespaces_are_two_workloads(registry: LocalRegistry) -> None:
    registry.register(workload(namespace="default"))
    registry.register(workload(namespace="shop"))
    assert sorted(registry.services()) == [REVIEWS, "reviews.shop.svc.cluster.local"]
    registry.deregister("shop", "reviews-v1")
    assert list(registry.services()) == [REVIEWS]


# --- TTL -------------------------------------------------------------------------------------


def test_workload_that_stops_reporting_expires_after_ttl(
    registry: LocalRegistry, clock: FakeClock, changes: list[str]
) -> None:
    registry.register(workload())
    clock.advance(15.0)
    assert registry.expire() == []
    assert list(registry.services()) == [REVIEWS]
    clock.advance(0.5)
    assert registry.expire() == ["default/reviews-v1"]
    assert registry.services() == {}
    assert changes == ["changed", "changed"]


def test_reports_keep_a_workload_alive(
    registry: LocalRegistry, clock: FakeClock, changes: list[str]
) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20002),)))
    expired: list[list[str]] = []
    for _ in range(4):
        clock.advance(10.0)
        registry.report("default", "reviews-v1", healthy=True)
        expired.append(registry.expire())
    # v2 never reported: gone once 20 s had passed; v1 reported every 10 s: still there at 40 s.
    assert expired == [[], ["default/reviews-v2"], [], []]
    assert [w.name for w in registry.workloads()] == ["reviews-v1"]
    # Only the expiry of v2 was a change besides the two registrations.
    assert len(changes) == 3


def test_re_registering_the_same_workload_refreshes_its_ttl(
    registry: LocalRegistry, clock: FakeClock
) -> None:
    registry.register(workload())
    clock.advance(10.0)
    registry.register(workload())
    clock.advance(10.0)
    assert registry.expire() == []


def test_nothing_expired_is_not_a_change(
    registry: LocalRegistry, clock: FakeClock, changes: list[str]
) -> None:
    registry.register(workload())
    clock.advance(1.0)
    registry.expire()
    assert changes == ["changed"]


# --- services and endpoints derived from workloads -------------------------------------------


def test_instances_of_one_service_share_the_service_port(registry: LocalRegistry) -> None:
    registry.register(workload("reviews-v1", ports=(WorkloadPort(9080, 20003),), version="v1"))
    registry.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20004),), version="v2"))
    registry.register(workload("reviews-v3", ports=(WorkloadPort(9080, 20005),), version="v3"))
    service = registry.services()[REVIEWS]
    assert service.ports == (ServicePort(9080, "http", "HTTP"),)
    assert (service.namespace, service.short_name) == ("default", "reviews")
    endpoints = registry.endpoints()[REVIEWS]
    assert {ep.labels["version"]: ep.target_port(9080) for ep in endpoints} == {
        "v1": 20003,
        "v2": 20004,
        "v3": 20005,
    }
    assert all(ep.service == REVIEWS for ep in endpoints)


def test_service_ports_are_the_union_of_its_workloads_ports(registry: LocalRegistry) -> None:
    registry.register(workload("api-a", "api", (WorkloadPort(8080, 21001),)))
    registry.register(
        workload(
            "api-b",
            "api",
            (WorkloadPort(8080, 21002), WorkloadPort(9090, 21003, "grpc", "GRPC")),
        )
    )
    service = registry.services()["api.default.svc.cluster.local"]
    assert [(p.port, p.protocol) for p in service.ports] == [(8080, "HTTP"), (9090, "GRPC")]
    a, b = registry.endpoints()["api.default.svc.cluster.local"]
    assert a.target_port(9090) is None  # api-a does not serve 9090: never sent there
    assert b.target_port(9090) == 21003


def test_endpoint_carries_identity_for_routing_and_mtls(registry: LocalRegistry) -> None:
    registry.register(workload(version="v2", app="reviews"))
    (ep,) = registry.endpoints()[REVIEWS]
    assert dict(ep.labels) == {"app": "reviews", "version": "v2"}
    assert ep.service_account == "bookinfo-reviews"
    assert ep.namespace == "default"


def test_domain_suffix_is_configurable(clock: FakeClock) -> None:
    registry = LocalRegistry(domain="mesh.test", clock=clock)
    registry.register(workload())
    assert list(registry.services()) == ["reviews.default.svc.mesh.test"]


# --- persistence -----------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "state" / "workloads.json"
    first = LocalRegistry(state_file=state, clock=clock)
    first.register(workload("reviews-v1", version="v1"))
    first.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20002),), version="v2"))
    first.report("default", "reviews-v2", healthy=False)

    restored = LocalRegistry(state_file=state, clock=clock)
    assert restored.workloads() == first.workloads()
    assert restored.services() == first.services()
    assert restored.endpoints() == first.endpoints()


def test_deregistration_is_persisted(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "workloads.json"
    first = LocalRegistry(state_file=state, clock=clock)
    first.register(workload())
    first.deregister("default", "reviews-v1")
    assert LocalRegistry(state_file=state, clock=clock).workloads() == ()


def test_restored_entries_get_a_fresh_ttl(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "workloads.json"
    LocalRegistry(state_file=state, ttl=15.0, clock=clock).register(workload())
    # The control plane was down for longer than the TTL: agents get a full TTL to report.
    clock.advance(60.0)
    restored = LocalRegistry(state_file=state, ttl=15.0, clock=clock)
    clock.advance(14.0)
    assert restored.expire() == []
    clock.advance(2.0)
    assert restored.expire() == ["default/reviews-v1"]


def test_restoring_is_not_reported_as_a_change(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "workloads.json"
    LocalRegistry(state_file=state, clock=clock).register(workload())
    restored = LocalRegistry(state_file=state, clock=clock)
    seen: list[str] = []
    restored.subscribe(lambda: seen.append("changed"))
    assert restored.register(workload()) is False
    assert seen == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="truncated-json"),
        pytest.param("null", id="null"),
        pytest.param(json.dumps([{"name": "x"}]), id="entry-missing-fields"),
    ],
)
def test_corrupt_state_file_is_ignored_with_a_warning(
    tmp_path: Path, clock: FakeClock, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "workloads.json"
    state.write_text(content)
    with caplog.at_level(logging.WARNING, logger="weft.registry"):
        registry = LocalRegistry(state_file=state, clock=clock)
    assert registry.workloads() == ()
    assert any(
        r.levelno == logging.WARNING and str(state) in r.getMessage() for r in caplog.records
    ), caplog.text
    # The registry still works, and a save replaces the bad file.
    registry.register(workload())
    assert [w.name for w in LocalRegistry(state_file=state, clock=clock).workloads()] == [
        "reviews-v1"
    ]


def test_a_bad_entry_discards_the_whole_state_file(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "workloads.json"
    good = workload().to_json()
    state.write_text(json.dumps([good, {"name": "broken"}]))
    assert LocalRegistry(state_file=state, clock=clock).workloads() == ()


@pytest.mark.parametrize("content", ['{"reviews-v1": {}}', '["reviews-v1"]'])
def test_state_file_of_the_wrong_shape_is_ignored(
    tmp_path: Path, clock: FakeClock, content: str
) -> None:
    state = tmp_path / "workloads.json"
    state.write_text(content)
    assert LocalRegistry(state_file=state, clock=clock).workloads() == ()


# --- parsing registrations -------------------------------------------------------------------


def test_from_json_round_trips_to_json() -> None:
    parsed = Workload.from_json(registration())
    assert Workload.from_json(parsed.to_json()) == parsed
    assert parsed.ports == (WorkloadPort(9080, 20001, "http", "HTTP"),)
    assert dict(parsed.labels) == {"app": "reviews", "version": "v1"}


def test_from_json_defaults() -> None:
    parsed = Workload.from_json(
        {"name": "w", "service": "s", "ports": [{"servicePort": 80, "targetPort": 8080}]}
    )
    assert (parsed.namespace, parsed.address, parsed.healthy) == ("default", "127.0.0.1", True)
    assert parsed.hostname() == "s.default.svc.cluster.local"


def test_from_json_normalises_protocol_and_sorts_ports() -> None:
    parsed = Workload.from_json(
        registration(
            ports=[
                {"servicePort": 9090, "targetPort": 20002, "name": "grpc", "protocol": "grpc"},
                {"servicePort": 9080, "targetPort": 20001},
            ]
        )
    )
    assert [(p.service_port, p.protocol) for p in parsed.ports] == [(9080, "HTTP"), (9090, "GRPC")]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"service": ""}, "service", id="empty-service"),
        pytest.param({"ports": [{"targetPort": 1}]}, "servicePort", id="no-service-port"),
        pytest.param({"ports": [{"servicePort": 80}]}, "targetPort", id="no-target-port"),
        pytest.param(
            {"ports": [{"servicePort": 0, "targetPort": 1}]}, "servicePort", id="port-zero"
        ),
        pytest.param(
            {"ports": [{"servicePort": 80, "targetPort": 70000}]}, "targetPort", id="port-too-big"
        ),
        pytest.param({"ports": []}, "ports", id="no-ports"),
    ],
)
def test_bad_registration_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Workload.from_json(registration(**overrides))


def test_registration_without_a_service_names_the_field() -> None:
    data = registration()
    del data["service"]
    with pytest.raises(ValueError, match="service"):
        Workload.from_json(data)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param(
            {"ports": [{"servicePort": "http", "targetPort": 1}]}, "servicePort", id="port-not-int"
        ),
        pytest.param({"labels": ["app=reviews"]}, "labels", id="labels-not-object"),
    ],
)
def test_malformed_registration_values_name_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        Workload.from_json(registration(**overrides))


# --- identity: views keep the objects of everything a change did not touch -------------------

RATINGS = "ratings.default.svc.cluster.local"


def test_endpoints_of_untouched_services_keep_their_identity(registry: LocalRegistry) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("ratings-v1", "ratings", (WorkloadPort(9080, 20010),)))
    before = registry.endpoints()

    registry.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20002),)))
    after = registry.endpoints()

    assert after is not before
    assert after[RATINGS] is before[RATINGS]
    assert after[REVIEWS] is not before[REVIEWS]
    assert [ep.workload for ep in after[REVIEWS]] == ["reviews-v1", "reviews-v2"]
    assert after[REVIEWS][0] is before[REVIEWS][0]  # reviews-v1 itself did not change


def test_health_change_replaces_only_that_hosts_endpoints(registry: LocalRegistry) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("ratings-v1", "ratings", (WorkloadPort(9080, 20010),)))
    endpoints, services = registry.endpoints(), registry.services()

    registry.report("default", "reviews-v1", healthy=False)

    assert registry.endpoints()[RATINGS] is endpoints[RATINGS]
    (ep,) = registry.endpoints()[REVIEWS]
    assert ep.healthy is False
    assert registry.services() is services  # health is not part of a service


def test_views_are_the_same_objects_when_nothing_changed(
    registry: LocalRegistry, clock: FakeClock
) -> None:
    registry.register(workload("reviews-v1"))
    endpoints, services = registry.endpoints(), registry.services()
    clock.advance(5.0)
    registry.report("default", "reviews-v1", healthy=True)  # a heartbeat, no change
    registry.register(workload("reviews-v1"))  # the same registration again
    assert registry.expire() == []
    assert registry.endpoints() is endpoints
    assert registry.services() is services


def test_services_keep_identity_until_their_ports_change(registry: LocalRegistry) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("ratings-v1", "ratings", (WorkloadPort(9080, 20010),)))
    before = registry.services()

    registry.register(workload("reviews-v2", ports=(WorkloadPort(9080, 20002),)))
    assert registry.services() is before  # one more instance, the same service

    registry.register(
        workload("reviews-v3", ports=(WorkloadPort(9080, 20003), WorkloadPort(9443, 20004)))
    )
    after = registry.services()
    assert after[RATINGS] is before[RATINGS]
    assert [p.port for p in after[REVIEWS].ports] == [9080, 9443]
    assert list(after) == [RATINGS, REVIEWS]


def test_removing_a_services_last_workload_keeps_the_others(
    registry: LocalRegistry, clock: FakeClock
) -> None:
    registry.register(workload("reviews-v1"))
    registry.register(workload("ratings-v1", "ratings", (WorkloadPort(9080, 20010),)))
    endpoints, services = registry.endpoints(), registry.services()
    clock.advance(10.0)
    registry.report("default", "ratings-v1", healthy=True)
    clock.advance(10.0)
    assert registry.expire() == ["default/reviews-v1"]
    assert registry.endpoints() == {RATINGS: endpoints[RATINGS]}
    assert registry.endpoints()[RATINGS] is endpoints[RATINGS]
    assert registry.services()[RATINGS] is services[RATINGS]
    assert REVIEWS not in registry.services()


def test_moving_a_workload_to_another_service_updates_both(registry: LocalRegistry) -> None:
    registry.register(workload("w", "reviews"))
    assert list(registry.endpoints()) == [REVIEWS]
    registry.register(workload("w", "ratings"))
    assert list(registry.endpoints()) == [RATINGS]
    assert list(registry.services()) == [RATINGS]


# --- coalesced saves -------------------------------------------------------------------------


def saved_names(state: Path) -> list[str]:
    return sorted(entry["name"] for entry in json.loads(state.read_text()))


def test_saves_within_the_interval_are_held_back_until_due(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = tmp_path / "workloads.json"
    registry = LocalRegistry(state_file=state, clock=clock, save_interval=1.0)
    registry.register(workload("reviews-v1"))
    assert saved_names(state) == ["reviews-v1"]  # the first change after a quiet spell: at once

    registry.register(workload("reviews-v2"))
    registry.register(workload("reviews-v3"))
    assert registry.expire() == []
    assert saved_names(state) == ["reviews-v1"]  # held back

    clock.advance(1.0)
    registry.expire()  # the control plane calls this every second
    assert saved_names(state) == ["reviews-v1", "reviews-v2", "reviews-v3"]


def test_flush_writes_held_back_changes(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "workloads.json"
    registry = LocalRegistry(state_file=state, clock=clock, save_interval=60.0)
    registry.register(workload("reviews-v1"))
    registry.deregister("default", "reviews-v1")
    registry.register(workload("reviews-v2"))
    registry.flush()
    restored = LocalRegistry(state_file=state, clock=clock)
    assert [w.name for w in restored.workloads()] == ["reviews-v2"]


def test_a_failed_save_is_logged_and_retried(
    tmp_path: Path, clock: FakeClock, changes: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    state = blocker / "workloads.json"
    registry = LocalRegistry(state_file=state, clock=clock)
    registry.subscribe(lambda: changes.append("changed"))
    with caplog.at_level(logging.WARNING, logger="weft.registry"):
        assert registry.register(workload()) is True
    assert changes == ["changed"]  # served even though it could not be saved
    assert "cannot save registry state" in caplog.text

    blocker.unlink()
    registry.expire()
    assert saved_names(state) == ["reviews-v1"]
