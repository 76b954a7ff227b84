"""`weft run` builds its registration with the control plane's own rules, before it starts
anything: bad flags fail at once, naming the field."""

from __future__ import annotations

import pytest

from weft.agent.run import RunOptions, SidecarAgent, run_workload
from weft.contract.registration import Registration
from weft.contract.wire import parse_message


def options(**overrides: object) -> RunOptions:
    values: dict[str, object] = {"service": "reviews", "app_port": 9080, "command": ["true"]}
    values.update(overrides)
    return RunOptions(**values)  # type: ignore[arg-type]


def test_the_registration_is_what_the_flags_say() -> None:
    agent = SidecarAgent(options(version="v2", namespace="shop", labels={"track": "canary"}))
    sent = agent.registrar.registration
    assert (sent.service, sent.namespace, sent.healthy) == ("reviews", "shop", False)
    assert sent.labels["version"] == "v2" and sent.labels["track"] == "canary"
    assert sent.ports[0].target_port == agent.inbound_port
    assert sent.service_account is None  # the control plane (or a group) decides
    # What the agent sends reads back the same on the control plane's side.
    assert parse_message(Registration, sent.to_wire(), "registration") == sent


def test_a_generated_name_is_valid_whatever_the_version_looks_like() -> None:
    agent = SidecarAgent(options(version="V1.2_rc"))
    assert agent.name.startswith("reviews-v1-2-rc-")


def test_bad_flags_stop_weft_run_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_workload(options(service="Reviews", labels={"a b": "x"}))
    err = capsys.readouterr().err
    assert code == 2
    assert "service: 'Reviews' is not a DNS-1123 label" in err
    assert 'labels["a b"]' in err
