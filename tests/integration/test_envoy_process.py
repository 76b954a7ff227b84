"""EnvoyProcess against real Envoy, and the Bookinfo sample services against each other."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from weft.agent.envoy import EnvoyProcess
from weft.agent.ports import free_port, free_ports, is_listening, wait_port
from weft.errors import ProxyError

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "samples" / "bookinfo" / "app.py"
HOST = "127.0.0.1"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


# -- helpers ---------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(0.02)


def process_gone(pid: int) -> bool:
    """True once `pid` is neither running nor a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(HOST, port)}}]}],
        },
    }


def http_listener(name: str, port: int, virtual_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    hcm = {
        "@type": f"{HCM}.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": {"name": name, "virtual_hosts": virtual_hosts},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    return {
        "name": name,
        "address": _socket(HOST, port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def route_all_to(cluster_name: str, domains: list[str]) -> dict[str, Any]:
    return {
        "name": cluster_name,
        "domains": domains,
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster_name}}],
    }


def static_bootstrap(listener_port: int, upstream_port: int) -> dict[str, Any]:
    """One listener sending every request to one upstream, the shape of an inbound sidecar."""
    return {
        "node": {"id": "sidecar~127.0.0.1~ratings-v1.default~default.svc.cluster.local"},
        "static_resources": {
            "listeners": [
                http_listener("inbound", listener_port, [route_all_to("ratings", ["*"])])
            ],
            "clusters": [cluster("ratings", upstream_port)],
        },
    }


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


async def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any, Any]:
    """GET on a fresh connection; returns (status, JSON body, headers)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, json.loads(await response.text()), response.headers


# -- fixtures --------------------------------------------------------------------------------


@dataclass
class App:
    service: str
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


StartApp = Callable[..., Awaitable[App]]


@pytest.fixture
async def bookinfo() -> AsyncIterator[StartApp]:
    """Starts sample services; every one is stopped and reaped afterwards."""
    started: list[App] = []

    async def start(service: str, version: str = "v1", **env: str) -> App:
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        environ.update(PORT=str(port), SERVICE_VERSION=version, **env)
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(APP), service, env=environ, stdin=asyncio.subprocess.DEVNULL
        )
        app = App(service, port, process)
        started.append(app)
        await wait_port(HOST, port, timeout=10)
        return app

    yield start
    for app in started:
        if app.process.returncode is None:
            app.process.terminate()
        try:
            await asyncio.wait_for(app.process.wait(), 5)
        except TimeoutError:
            app.process.kill()
            await app.process.wait()


StartEnvoy = Callable[..., Awaitable[EnvoyProcess]]


@pytest.fixture
async def envoys(tmp_path: Path) -> AsyncIterator[StartEnvoy]:
    """Starts EnvoyProcesses, each in its own work dir; all are stopped afterwards."""
    started: list[EnvoyProcess] = []

    async def start(
        bootstrap: dict[str, Any], admin_port: int | None = None, **options: Any
    ) -> EnvoyProcess:
        work_dir = tmp_path / f"envoy-{len(started)}"
        envoy = EnvoyProcess(
            bootstrap, work_dir, free_port() if admin_port is None else admin_port, **options
        )
        started.append(envoy)
        await envoy.start()
        return envoy

    yield start
    for envoy in started:
        await envoy.stop()


@dataclass
class Recorder:
    """A plain HTTP server that records what it was asked and answers `{}`."""

    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    record = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            body = b'{"recorded": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()
    thread.join(5)


# -- Envoy -----------------------------------------------------------------------------------


async def test_request_through_envoy_reaches_the_app(
    bookinfo: StartApp, envoys: StartEnvoy
) -> None:
    ratings = await bookinfo("ratings")
    listener_port = free_port()
    envoy = await envoys(static_bootstrap(listener_port, ratings.port))
    await envoy.wait_live(timeout=10)
    assert await envoy.server_state() == "LIVE"

    status, body, headers = await get(f"http://{HOST}:{listener_port}/ratings/0")

    assert status == 200
    assert headers["x-service-name"] == "ratings"
    assert body["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}
    stats = await envoy.stats(r"^cluster\.ratings\.upstream_rq_")
    assert stats["cluster.ratings.upstream_rq_200"] == 1
    dump = await envoy.config_dump()
    assert "inbound" in json.dumps(dump)
    assert "ratings" in await envoy.admin_get("/clusters")


async def test_stop_reaps_envoy_and_frees_its_ports(bookinfo: StartApp, envoys: StartEnvoy) -> None:
    ratings = await bookinfo("ratings")
    listener_port, admin_port = free_ports(2)
    envoy = await envoys(static_bootstrap(listener_port, ratings.port), admin_port=admin_port)
    await envoy.wait_live(timeout=10)
    pid = envoy.pid
    assert pid is not None
    assert await is_listening(HOST, listener_port)

    assert await envoy.stop() == 0

    assert envoy.returncode == 0
    assert process_gone(pid)
    assert not await is_listening(HOST, admin_port)
    assert not await is_listening(HOST, listener_port)
    assert await envoy.stop() == 0  # a second stop is harmless
    assert await envoy.wait() == 0


async def test_broken_bootstrap_fails_start_with_envoys_complaint(envoys: StartEnvoy) -> None:
    bootstrap = static_bootstrap(free_port(), free_port())
    bootstrap["static_resources"]["clusters"][0]["lb_policy"] = "FASTEST_PLEASE"

    with pytest.raises(ProxyError) as failure:
        await envoys(bootstrap)

    message = str(failure.value)
    assert "Envoy exited with code 1" in message
    assert "FASTEST_PLEASE" in message
    assert "--mode validate" in message


async def test_busy_admin_port_fails_start_clearly(envoys: StartEnvoy) -> None:
    admin_port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), HOST, admin_port)
    try:
        with pytest.raises(ProxyError, match=r"(?i)address already in use"):
            await envoys({}, admin_port=admin_port)
    finally:
        server.close()
        await server.wait_closed()


async def test_two_envoys_run_side_by_side(bookinfo: StartApp, envoys: StartEnvoy) -> None:
    ratings = await bookinfo("ratings")
    first_port, second_port = free_ports(2)
    first = await envoys(static_bootstrap(first_port, ratings.port))
    second = await envoys(static_bootstrap(second_port, ratings.port))

    await asyncio.gather(first.wait_live(timeout=10), second.wait_live(timeout=10))

    for envoy, port in ((first, first_port), (second, second_port)):
        assert (await envoy.server_info())["hot_restart_version"] == "disabled"
        status, _, headers = await get(f"http://{HOST}:{port}/ratings/1")
        assert (status, headers["x-service-name"]) == (200, "ratings")
    assert first.returncode is None and second.returncode is None


async def test_admin_port_zero_is_discovered(envoys: StartEnvoy) -> None:
    envoy = await envoys({}, admin_port=0)

    assert envoy.admin_port != 0
    assert await is_listening(HOST, envoy.admin_port)
    assert (await envoy.server_info())["state"] == "LIVE"


async def test_envoy_can_be_started_again_after_stop(tmp_path: Path) -> None:
    envoy = EnvoyProcess({}, tmp_path, 0)
    async with envoy:
        first_pid = envoy.pid
        assert await envoy.server_state() == "LIVE"
    assert envoy.returncode == 0

    async with envoy:
        assert envoy.pid != first_pid
        assert await envoy.server_state() == "LIVE"
    assert first_pid is not None and process_gone(first_pid)


async def test_wait_live_explains_what_envoy_is_waiting_for(envoys: StartEnvoy) -> None:
    xds_port = free_port()  # nothing listens: the first CDS response never comes
    h2 = {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
    xds_cluster = cluster("xds", xds_port)
    xds_cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2
    }
    ads = {"api_type": "GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}
    bootstrap = {
        "node": {"id": "sidecar~127.0.0.1~a.default~default.svc.cluster.local", "cluster": "a"},
        "dynamic_resources": {
            "ads_config": ads,
            "cds_config": {"ads": {}},
            "lds_config": {"ads": {}},
        },
        "static_resources": {"clusters": [xds_cluster]},
    }
    envoy = await envoys(bootstrap)

    with pytest.raises(ProxyError, match=r"did not become LIVE.*state (PRE_)?INITIALIZING"):
        await envoy.wait_live(timeout=0.5)
    assert envoy.returncode is None


async def test_drain_fails_health_then_closes_listeners(
    bookinfo: StartApp, envoys: StartEnvoy
) -> None:
    ratings = await bookinfo("ratings")
    listener_port = free_port()
    envoy = await envoys(static_bootstrap(listener_port, ratings.port), drain_time_s=1)
    await envoy.wait_live(timeout=10)

    left = await envoy.drain(seconds=5)

    assert left == 0
    assert await envoy.server_state() == "DRAINING"
    with pytest.raises(ProxyError, match="503"):
        await envoy.admin_get("/ready")

    async def refused() -> bool:
        return not await is_listening(HOST, listener_port)

    await eventually(refused, timeout=10, what="listener closed after the drain time")
    assert envoy.returncode is None  # draining is not stopping


async def test_drain_waits_for_open_connections_up_to_its_bound(
    bookinfo: StartApp, envoys: StartEnvoy
) -> None:
    ratings = await bookinfo("ratings")
    listener_port = free_port()
    envoy = await envoys(static_bootstrap(listener_port, ratings.port), drain_time_s=10)
    await envoy.wait_live(timeout=10)
    # A raw TCP connection with no request on it: Envoy has nothing to answer with
    # `connection: close`, so it stays open until the drain gives up on it.
    _, writer = await asyncio.open_connection(HOST, listener_port)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        left = await envoy.drain(seconds=0.5)
        assert left == 1
        assert loop.time() - started < 5
    finally:
        writer.close()


async def test_envoy_dies_with_its_parent(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from weft.agent.envoy import EnvoyProcess\n"
        "async def main():\n"
        "    envoy = EnvoyProcess({}, Path(sys.argv[1]), 0)\n"
        "    await envoy.start()\n"
        "    print(envoy.pid, flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    line = b""
    try:
        assert agent.stdout is not None
        line = await asyncio.wait_for(agent.stdout.readline(), 20)
        envoy_pid = int(line)
        assert not process_gone(envoy_pid)

        agent.send_signal(signal.SIGKILL)  # no chance to stop Envoy itself
        await agent.wait()

        async def gone() -> bool:
            return process_gone(envoy_pid)

        await eventually(gone, timeout=10, what=f"Envoy {envoy_pid} exiting after its parent")
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        if line and not process_gone(int(line)):
            os.kill(int(line), signal.SIGKILL)


async def test_envoy_as_http_proxy_for_bookinfo(bookinfo: StartApp, envoys: StartEnvoy) -> None:
    """productpage calls `details:9080` by name through an HTTP_PROXY that is an Envoy."""
    details = await bookinfo("details")
    reviews = await bookinfo("reviews", "v1")
    proxy_port = free_port()
    outbound = http_listener(
        "outbound",
        proxy_port,
        [
            route_all_to("details", ["details:9080", "details"]),
            route_all_to("reviews", ["reviews:9080", "reviews"]),
        ],
    )
    bootstrap = {
        "static_resources": {
            "listeners": [outbound],
            "clusters": [cluster("details", details.port), cluster("reviews", reviews.port)],
        }
    }
    envoy = await envoys(bootstrap)
    await envoy.wait_live(timeout=10)
    productpage = await bookinfo(
        "productpage", HTTP_PROXY=f"http://{HOST}:{proxy_port}", NO_PROXY="*"
    )

    status, body, headers = await get(f"{productpage.url}/productpage")

    assert status == 200, body
    assert "x-weft-degraded" not in headers, body
    assert body["details"]["publisher"] == "Saltmarsh Press"
    assert body["reviews"]["version"] == "v1"


# -- Bookinfo sample -------------------------------------------------------------------------


async def test_productpage_combines_details_and_reviews(bookinfo: StartApp) -> None:
    details = await bookinfo("details")
    reviews = await bookinfo("reviews", "v1")
    productpage = await bookinfo("productpage", DETAILS_URL=details.url, REVIEWS_URL=reviews.url)

    status, body, headers = await get(f"{productpage.url}/productpage?u=jason")

    assert status == 200
    assert (headers["x-service-name"], headers["x-service-version"]) == ("productpage", "v1")
    assert "x-weft-degraded" not in headers
    assert body["product"]["id"] == 0
    assert body["details"]["ISBN-13"] == "978-1-234-56789-7"
    assert body["reviews"]["version"] == "v1"
    assert all("rating" not in review for review in body["reviews"]["reviews"])
    assert body["user"] == "jason"


@pytest.mark.parametrize(("version", "colour"), [("v2", "black"), ("v3", "red")])
async def test_reviews_shows_stars_from_ratings(
    bookinfo: StartApp, version: str, colour: str
) -> None:
    ratings = await bookinfo("ratings")
    reviews = await bookinfo("reviews", version, RATINGS_URL=ratings.url)

    status, body, headers = await get(f"{reviews.url}/reviews/0")

    assert (status, headers["x-service-version"]) == (200, version)
    assert body["version"] == version
    assert [review["rating"] for review in body["reviews"]] == [
        {"stars": 5, "color": colour},
        {"stars": 4, "color": colour},
    ]


async def test_reviews_without_ratings_still_answers(bookinfo: StartApp) -> None:
    reviews = await bookinfo("reviews", "v2", RATINGS_URL=f"http://{HOST}:{free_port()}")

    status, body, _ = await get(f"{reviews.url}/reviews/0")

    assert status == 200
    assert [review["rating"] for review in body["reviews"]] == [
        {"error": "Ratings service is currently unavailable"}
    ] * 2


async def test_productpage_degrades_when_details_is_down(bookinfo: StartApp) -> None:
    reviews = await bookinfo("reviews", "v1")
    productpage = await bookinfo(
        "productpage", DETAILS_URL=f"http://{HOST}:{free_port()}", REVIEWS_URL=reviews.url
    )

    status, body, headers = await get(f"{productpage.url}/productpage")

    assert status == 200
    assert headers["x-weft-degraded"] == "1"
    assert "refused" in body["details"]["error"].lower()
    assert body["reviews"]["version"] == "v1"


async def test_productpage_propagates_trace_and_user_headers(
    bookinfo: StartApp, recorder: Recorder
) -> None:
    stub = f"http://{HOST}:{recorder.port}"
    productpage = await bookinfo("productpage", DETAILS_URL=stub, REVIEWS_URL=stub)
    sent = {
        "x-request-id": "3f1c",
        "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
        "x-b3-spanid": "e457b5a2e4d86bd1",
        "x-b3-sampled": "1",
        "traceparent": "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
        "cookie": "session=secret",
    }

    status, _, _ = await get(f"{productpage.url}/productpage?u=jason", headers=sent)

    assert status == 200
    assert sorted(path for path, _ in recorder.requests) == ["/details/0", "/reviews/0"]
    for _, received in recorder.requests:
        assert received["end-user"] == "jason"
        for name in ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent"):
            assert received[name] == sent[name]
        assert "cookie" not in received


async def test_calls_by_service_name_go_through_http_proxy_despite_no_proxy(
    bookinfo: StartApp, recorder: Recorder
) -> None:
    productpage = await bookinfo(
        "productpage",
        HTTP_PROXY=f"http://{HOST}:{recorder.port}",
        NO_PROXY="*,localhost",
        no_proxy="details,.svc",
    )

    status, body, headers = await get(f"{productpage.url}/productpage")

    assert status == 200, body
    assert "x-weft-degraded" not in headers
    # A proxy sees the absolute URL, whose authority is what the sidecar routes on.
    assert sorted(path for path, _ in recorder.requests) == [
        "http://details:9080/details/0",
        "http://reviews:9080/reviews/0",
    ]


async def test_every_service_answers_health_and_404(bookinfo: StartApp) -> None:
    for service in ("productpage", "details", "reviews", "ratings"):
        app = await bookinfo(service, "v3")
        status, body, headers = await get(f"{app.url}/health")
        assert (status, headers["x-service-name"], headers["x-service-version"]) == (
            200,
            service,
            "v3",
        )
        status, body, _ = await get(f"{app.url}/no/such/page")
        assert status == 404
        assert "not found" in body["error"]


async def test_sample_exits_cleanly_on_sigterm(bookinfo: StartApp) -> None:
    app = await bookinfo("ratings")

    app.process.terminate()

    assert await asyncio.wait_for(app.process.wait(), 10) == 0
    assert not await is_listening(HOST, app.port)
