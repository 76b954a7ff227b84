"""Registration and heartbeat messages: what an agent may say, and how a refusal reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from weft.contract.registration import (
    Heartbeat,
    Registration,
    RegistrationPort,
    RootRotation,
    WorkloadRef,
)
from weft.contract.wire import MessageError, parse_message
from weft.registry.local import Workload


def registration(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "reviews-v1-3f2a1c",
        "namespace": "bookinfo",
        "service": "reviews",
        "address": "127.0.0.1",
        "ports": [{"servicePort": 9080, "targetPort": 20001, "name": "http", "protocol": "HTTP"}],
        "labels": {"app": "reviews", "version": "v1", "security.istio.io/tlsMode": "istio"},
        "serviceAccount": "bookinfo-reviews",
        "healthy": False,
        "group": "reviews-canary",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def refusal(data: Any, model: type[Any] = Registration) -> str:
    with pytest.raises(MessageError) as caught:
        parse_message(model, data, "registration")
    return str(caught.value)


def test_what_the_agent_sends_is_what_the_control_plane_reads() -> None:
    sent = parse_message(Registration, registration(), "registration")
    body = json.dumps(sent.to_wire()).encode()
    assert parse_message(Registration, body, "registration") == sent
    assert sent.ports == [RegistrationPort(service_port=9080, target_port=20001)]
    assert sent.key == "bookinfo/reviews-v1-3f2a1c"


def test_a_registration_is_the_registrys_workload_and_back() -> None:
    workload = Workload.from_json(registration())
    assert (workload.service_account, workload.group) == ("bookinfo-reviews", "reviews-canary")
    assert Workload.from_json(workload.to_json()) == workload


def test_defaults_and_normal_forms() -> None:
    sent = parse_message(
        Registration,
        {
            "name": "w",
            "service": "s",
            "address": "::0001",
            "ports": [{"servicePort": 80, "targetPort": 8080, "protocol": "grpc"}],
        },
        "registration",
    )
    assert (sent.namespace, sent.address, sent.healthy, sent.group) == (
        "default",
        "::1",
        True,
        None,
    )
    assert sent.ports[0].protocol == "GRPC"
    # An empty group (as older state files hold) is no group.
    assert parse_message(Registration, registration(group=""), "registration").group is None


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        pytest.param({"service": "a b\nc"}, "service", "DNS-1123 label", id="service-with-space"),
        pytest.param({"service": "Reviews"}, "service", "lower-case", id="service-upper-case"),
        pytest.param({"service": "reviews\n"}, "service", "DNS-1123", id="service-newline-end"),
        pytest.param({"service": "r" * 64}, "service", "at most 63", id="service-too-long"),
        pytest.param({"service": "-reviews"}, "service", "DNS-1123", id="service-leading-dash"),
        pytest.param({"namespace": "book.info"}, "namespace", "label", id="namespace-dotted"),
        pytest.param({"name": "reviews_v1"}, "name", "subdomain", id="name-underscore"),
        pytest.param({"name": "x" * 254}, "name", "253", id="name-too-long"),
        pytest.param({"serviceAccount": "a/b"}, "serviceAccount", "subdomain", id="account"),
        pytest.param({"group": "Canary"}, "group", "subdomain", id="group"),
        pytest.param({"address": "reviews.local"}, "address", "IP address", id="address-name"),
        pytest.param({"labels": {"app": "a b"}}, "labels.app", "label value", id="label-value"),
        pytest.param({"labels": {"a b": "x"}}, 'labels["a b"]', "label key", id="label-key"),
        pytest.param({"labels": {"x/": "v"}}, 'labels["x/"]', "label key", id="label-key-slash"),
        pytest.param({"labels": {"Ex_/a": "v"}}, "labels", "DNS subdomain prefix", id="prefix"),
        pytest.param({"labels": {"app": "v" * 64}}, "labels.app", "63", id="label-too-long"),
        pytest.param({"labels": {"app": 3}}, "labels.app", "string", id="label-not-text"),
        pytest.param({"labels": ["app=x"]}, "labels", "mapping", id="labels-list"),
        pytest.param({"ports": []}, "ports", "at least 1", id="no-ports"),
        pytest.param({"ports": "9080"}, "ports", "list", id="ports-text"),
        pytest.param(
            {"ports": [{"servicePort": 0, "targetPort": 1}]}, "servicePort", "1..65535", id="zero"
        ),
        pytest.param(
            {"ports": [{"servicePort": 80, "targetPort": 65536}]},
            "targetPort",
            "1..65535",
            id="too-big",
        ),
        pytest.param(
            {"ports": [{"servicePort": "80", "targetPort": 1}]}, "servicePort", "integer", id="text"
        ),
        pytest.param(
            {"ports": [{"servicePort": 80, "targetPort": 1, "name": "HTTP"}]},
            "ports[0].name",
            "DNS-1123",
            id="port-name",
        ),
        pytest.param(
            {"ports": [{"servicePort": 80, "targetPort": 1, "protocol": "htp"}]},
            "protocol",
            "'HTTP'",
            id="protocol",
        ),
        pytest.param(
            {
                "ports": [
                    {"servicePort": 80, "targetPort": 1},
                    {"servicePort": 80, "targetPort": 2, "name": "web"},
                ]
            },
            "servicePort 80",
            "its own",
            id="same-port-twice",
        ),
        pytest.param({"healthy": "yes"}, "healthy", "true or false", id="healthy-text"),
        pytest.param({"serviceAcount": "x"}, "serviceAcount", "serviceAccount", id="misspelt"),
        pytest.param({"service": None}, "service", "missing", id="no-service"),
    ],
)
def test_a_bad_registration_names_the_field_and_what_is_allowed(
    overrides: dict[str, Any], field: str, allowed: str
) -> None:
    message = refusal(registration(**overrides))
    assert field in message
    assert allowed in message


def test_every_problem_is_named_at_once() -> None:
    message = refusal(registration(service="A", namespace="B", ports=[]))
    assert "service" in message and "namespace" in message and "ports" in message


def test_label_keys_and_values_as_kubernetes_allows() -> None:
    labels = {
        "app.kubernetes.io/name": "reviews",
        "security.istio.io/tlsMode": "istio",
        "Track_1.x": "Canary_A-1.2",
        "empty": "",
        "a": "b",
    }
    assert parse_message(Registration, registration(labels=labels), "registration").labels == labels


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(b'{"name": "\xff"}', "not UTF-8", id="latin-1"),
        pytest.param(b"\xfe\xff\x00{", "not UTF-8", id="utf-16"),
        pytest.param(b"[" * 100_000, "nested", id="deep-list"),
        pytest.param(b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nested", id="deep-object"),
        pytest.param(b'{"name": "w",', "not valid JSON", id="cut-short"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"[]", "expected a mapping", id="list"),
        pytest.param(b"null", "expected a mapping", id="null"),
    ],
)
def test_unreadable_bodies_are_refused_with_the_reason(body: bytes, says: str) -> None:
    assert says in refusal(body)


def test_heartbeat() -> None:
    beat = parse_message(Heartbeat, b'{"healthy": true, "certRoot": "0123456789abcdef"}', "h")
    assert (beat.healthy, beat.cert_root) == (True, "0123456789abcdef")
    assert "healthy" in refusal({}, Heartbeat)
    assert "certRoot" in refusal({"healthy": True, "certRoot": "not hex\n"}, Heartbeat)
    assert "extra" in refusal({"healthy": True, "extra": 1}, Heartbeat)


def test_workload_paths_and_rotation_steps() -> None:
    assert "namespace" in refusal({"namespace": "a b", "name": "w"}, WorkloadRef)
    assert "'begin', 'activate' or 'finish'" in refusal({"step": "start"}, RootRotation)
