"""The admin API over HTTP, on the control plane's real parts in this process: bodies are
checked before anything is stored, and every bad one is answered 4xx saying what was wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from weft.config.memory import MemoryStore
from weft.contract.registration import Heartbeat, Registration
from weft.contract.wire import parse_message
from weft.controlplane.admin import CONFIG_BODY_LIMIT, MESSAGE_BODY_LIMIT, admin_app
from weft.controlplane.backend import ControlPlaneBackend
from weft.controlplane.citadel import Citadel
from weft.controlplane.client import AdminClient, AdminRefused, NotRegistered
from weft.registry.local import LocalRegistry, Workload
from weft.snapshot.snapshot import Snapshot
from weft.telemetry.metrics import ControlPlaneMetrics
from weft.xds.server import AdsServer

REGISTRATION: dict[str, Any] = {
    "name": "reviews-v1",
    "service": "reviews",
    "ports": [{"servicePort": 9080, "targetPort": 20001}],
    "labels": {"app": "reviews", "version": "v1"},
}

GROUP = """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews-canary}
spec:
  metadata: {labels: {app: reviews, track: canary}}
  template: {serviceAccount: bookinfo-reviews}
  probe: {httpGet: {path: /health, port: 9080}}
"""


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    admin: AdminClient
    registry: LocalRegistry
    store: MemoryStore

    async def send(
        self, method: str, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": content_type}
        async with self.http.request(method, self.url + path, data=body, headers=headers) as r:
            return r.status, await r.json()


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store, registry = MemoryStore(), LocalRegistry()
    ready = asyncio.Event()
    ready.set()
    backend = ControlPlaneBackend(
        store, registry, Citadel(tmp_path), AdsServer(Snapshot(), ControlPlaneMetrics()),
        ControlPlaneMetrics(), ready, lambda: False,
    )  # fmt: skip
    server = TestServer(admin_app(backend), host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    http = aiohttp.ClientSession(trust_env=False)
    admin = AdminClient("127.0.0.1", server.port)
    try:
        yield Api(f"http://127.0.0.1:{server.port}", http, admin, registry, store)
    finally:
        await admin.close()
        await http.close()
        await server.close()


async def test_a_workload_registers_reports_and_leaves(api: Api) -> None:
    registration = parse_message(Registration, REGISTRATION, "registration")
    answer = await api.admin.register(registration)
    assert answer.registered == "default/reviews-v1"
    assert answer.entry.spec.service_account == "reviews"
    assert answer.credentials is not None
    assert answer.credentials.identity == "spiffe://cluster.local/ns/default/sa/reviews"
    beat = await api.admin.heartbeat("default", "reviews-v1", Heartbeat(healthy=False))
    assert beat.credentials is not None
    assert [w.healthy for w in await api.admin.workloads()] == [False]
    assert await api.admin.deregister("default", "reviews-v1")
    with pytest.raises(NotRegistered, match="register it again"):
        await api.admin.heartbeat("default", "reviews-v1", Heartbeat(healthy=True))


async def test_a_group_gives_labels_identity_and_probe(api: Api) -> None:
    await api.admin.apply(GROUP, "group.yaml")
    registration = parse_message(
        Registration, {**REGISTRATION, "group": "reviews-canary"}, "registration"
    )
    answer = await api.admin.register(registration)
    assert answer.entry.spec.labels == {"app": "reviews", "track": "canary", "version": "v1"}
    assert answer.entry.spec.service_account == "bookinfo-reviews"
    assert answer.probe is not None and answer.probe.http_get is not None
    assert answer.probe.http_get.path == "/health"


async def test_registering_under_a_missing_group_is_refused(api: Api) -> None:
    registration = parse_message(Registration, {**REGISTRATION, "group": "nope"}, "registration")
    with pytest.raises(AdminRefused, match="WorkloadGroup default/nope does not exist") as e:
        await api.admin.register(registration)
    assert e.value.status == 400
    assert api.registry.workloads() == ()


@pytest.mark.parametrize(
    ("method", "path", "body", "says"),
    [
        pytest.param(
            "POST",
            "/v1/workloads",
            json.dumps({**REGISTRATION, "service": "a b\nc"}).encode(),
            "service: 'a b\\nc' is not a DNS-1123 label",
            id="service-name",
        ),
        pytest.param(
            "POST",
            "/v1/workloads",
            json.dumps({**REGISTRATION, "labels": {"app": "a b"}}).encode(),
            "labels.app",
            id="label",
        ),
        pytest.param(
            "POST",
            "/v1/workloads",
            json.dumps({**REGISTRATION, "ports": [{"servicePort": 0, "targetPort": 1}]}).encode(),
            "ports[0].servicePort: port 0 is out of range 1..65535",
            id="port",
        ),
        pytest.param("POST", "/v1/workloads", b"\xff\xfe{}", "not UTF-8", id="not-utf-8"),
        pytest.param("POST", "/v1/workloads", b"[" * 50_000, "nested", id="deep"),
        pytest.param("POST", "/v1/workloads", b"{name: x}", "not valid JSON", id="bad-json"),
        pytest.param("POST", "/v1/workloads", b"", "not valid JSON", id="empty"),
        pytest.param(
            "PUT",
            "/v1/workloads/default/reviews-v1/health",
            b'{"healthy": 1}',
            "true or false",
            id="heartbeat",
        ),
        pytest.param(
            "PUT", "/v1/workloads/a%20b/x/health", b'{"healthy": true}', "namespace", id="path"
        ),
        pytest.param("POST", "/v1/ca/rotate", b'{"step": "start"}', "'begin'", id="rotation"),
        pytest.param("POST", "/v1/config", b"kind: \xff", "not UTF-8", id="yaml-not-utf-8"),
        pytest.param("POST", "/v1/config", b"a: " + b"[" * 20_000, "nested", id="deep-yaml"),
        pytest.param(
            "POST", "/v1/config", (GROUP + "---\n" + GROUP).encode(), "defined twice", id="twice"
        ),
    ],
)
async def test_a_bad_body_is_answered_400_saying_what_was_wrong(
    api: Api, method: str, path: str, body: bytes, says: str
) -> None:
    api.registry.register(Workload.from_json(REGISTRATION))
    before = (api.registry.workloads(), api.store.objects())
    status, answer = await api.send(method, path, body)
    assert (status, says in answer["error"]) == (400, True), answer
    assert (api.registry.workloads(), api.store.objects()) == before  # nothing stored


async def test_an_unknown_charset_is_answered_400(api: Api) -> None:
    status, answer = await api.send(
        "POST", "/v1/config", GROUP.encode(), "application/yaml; charset=klingon"
    )
    assert status == 400
    assert "klingon" in answer["error"]


@pytest.mark.parametrize(
    ("path", "limit", "says"),
    [
        pytest.param("/v1/workloads", MESSAGE_BODY_LIMIT, "64 KiB", id="registration"),
        pytest.param("/v1/config", CONFIG_BODY_LIMIT, "16 MiB", id="config"),
    ],
)
async def test_a_body_over_the_limit_is_answered_413_naming_it(
    api: Api, path: str, limit: int, says: str
) -> None:
    status, answer = await api.send("POST", path, b" " * (limit + 1))
    assert status == 413
    assert f"larger than the limit of {says}" in answer["error"]
    # At the limit, the body is read (and answered for what it holds).
    status, _ = await api.send("POST", path, b" " * limit)
    assert status != 413


async def test_a_chunked_body_over_the_limit_is_answered_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MESSAGE_BODY_LIMIT // 1024 + 1):
            yield b" " * 1024

    async with api.http.post(api.url + "/v1/workloads", data=chunks()) as resp:
        assert resp.status == 413


async def test_a_rotation_step_out_of_turn_is_a_conflict(api: Api) -> None:
    with pytest.raises(AdminRefused, match="finish") as e:
        await api.admin.ca_rotate("finish")
    assert e.value.status == 409


async def test_an_unknown_proxy_is_not_found(api: Api) -> None:
    with pytest.raises(AdminRefused, match="no connected proxy matches 'x'") as e:
        await api.admin.config_dump("x")
    assert e.value.status == 404
