"""A small bookstore made of four HTTP services, for trying a service mesh.

Run one service per process:  PORT=9080 python samples/bookinfo/app.py productpage

Services call each other by name (`http://reviews:9080/...`), exactly as they would in
Kubernetes. On one machine the mesh makes that work by running each service with HTTP_PROXY
pointing at its sidecar; this program only uses urllib's default proxy handling.
Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# `sleep` serves nothing of its own: it is a client inside the mesh, as Istio's sample is.
BOOK_PARTS = ("details", "reviews", "ratings")
SERVICES = ("productpage", "details", "reviews", "ratings", "sleep")
SERVICE_PORT = 9080
OUTBOUND_TIMEOUT_S = 2.0
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

# Headers a request carries on to every call it causes, so traces and per-user routing
# (a VirtualService matching `end-user`) follow it through the whole call graph.
PROPAGATED_HEADERS = ("end-user", "x-request-id", "b3", "traceparent", "tracestate")
PROPAGATED_PREFIXES = ("x-b3-",)

PRODUCT = {
    "id": 0,
    "title": "The Cartographer of Quiet Harbours",
    "summary": (
        "A retired lighthouse keeper maps every cove of a fictional coastline and finds that "
        "the tides keep redrawing his work."
    ),
}

DETAILS = {
    "author": "Maren Ostrowe",
    "year": 2019,
    "type": "paperback",
    "pages": 312,
    "publisher": "Saltmarsh Press",
    "language": "English",
    "ISBN-10": "123456789X",
    "ISBN-13": "978-1-234-56789-7",
}

REVIEWS = (
    (
        "Reviewer1",
        "Slow to start, then impossible to put down. The chapter on the winter storm "
        "alone is worth the price.",
    ),
    (
        "Reviewer2",
        "Lovely prose about maps and memory, though the ending wraps up a little too neatly.",
    ),
)

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}

STAR_COLOURS = {"v2": "black", "v3": "red"}


def destination(env_name: str, service: str) -> str:
    """Base URL of a service, `http://<service>:9080` unless overridden by `env_name`."""
    return os.environ.get(env_name, f"http://{service}:{SERVICE_PORT}").rstrip("/")


def keep_service_names_proxied(hosts: list[str]) -> None:
    """Drop NO_PROXY entries that would send calls to these hosts around the proxy.

    A NO_PROXY inherited from a developer's shell (`*`, `.local`, a name we use) would make
    calls skip the sidecar, and name-based calls then fail to resolve. IP addresses and
    localhost keep whatever bypass they had.
    """
    names = [host for host in hosts if host and _is_service_name(host)]
    for variable in ("NO_PROXY", "no_proxy"):
        value = os.environ.get(variable)
        if not value:
            continue
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        kept = [entry for entry in entries if not any(_bypasses(entry, name) for name in names)]
        if kept != entries:
            dropped = sorted(set(entries) - set(kept))
            print(
                f"ignoring {variable} entries {dropped}: they would bypass the mesh proxy",
                file=sys.stderr,
            )
            os.environ[variable] = ",".join(kept)


def _is_service_name(host: str) -> bool:
    if host == "localhost":
        return False
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return True
    return False


def _bypasses(entry: str, host: str) -> bool:
    """Whether a NO_PROXY entry covers `host`, read as urllib and curl read it."""
    if entry == "*":
        return True
    name = entry.lstrip(".").lower()
    if name.count(":") == 1:  # host:port; more colons mean an IPv6 address
        name = name.partition(":")[0]
    host = host.lower()
    return host == name or host.endswith("." + name)


def propagated(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of incoming request headers that outbound calls must carry."""
    picked: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in PROPAGATED_HEADERS or lower.startswith(PROPAGATED_PREFIXES):
            picked[lower] = value
    return picked


def fetch_json(url: str, headers: Mapping[str, str]) -> tuple[Any, str | None]:
    """GET `url`; return (body, None) on success or (None, reason) on any failure."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=OUTBOUND_TIMEOUT_S) as response:
            return json.loads(response.read()), None
    except urllib.error.HTTPError as exc:
        return None, f"{exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, str(exc.reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, bodies that are not JSON
        return None, str(exc) or type(exc).__name__


Response = tuple[int, Any, dict[str, str]]
Route = Callable[[str, dict[str, list[str]], dict[str, str]], Response]


class Bookinfo:
    """Request routing for one service; `handle` returns (status, JSON body, extra headers)."""

    def __init__(self, service: str, version: str) -> None:
        self.service = service
        self.version = version
        self.details_url = destination("DETAILS_URL", "details")
        self.reviews_url = destination("REVIEWS_URL", "reviews")
        self.ratings_url = destination("RATINGS_URL", "ratings")
        self.podname = os.environ.get("POD_NAME") or f"{socket.gethostname()}/{os.getpid()}"

    def outbound_hosts(self) -> list[str]:
        urls = {
            "productpage": [self.details_url, self.reviews_url],
            "reviews": [self.ratings_url] if self.version in STAR_COLOURS else [],
        }.get(self.service, [])
        return [urlsplit(url).hostname or "" for url in urls]

    def handle(self, target: str, headers: Mapping[str, str]) -> Response:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        outbound = propagated(headers)
        segments = [segment for segment in parts.path.split("/") if segment]
        if segments == ["health"]:
            return 200, {"status": "ok"}, {}
        if segments == ["headers"]:
            # What arrived, as the app sees it: shows the caller's identity forwarded by the
            # sidecar in x-forwarded-client-cert.
            return 200, {"headers": dict(headers)}, {}
        if self.service == "productpage" and segments == ["productpage"]:
            return self.productpage(query, outbound)
        if len(segments) == 2 and segments[0] == self.service and self.service in BOOK_PARTS:
            if not segments[1].isdigit():
                return 400, {"error": "the product id must be a number"}, {}
            product_id = int(segments[1])
            if self.service == "details":
                return 200, {"id": product_id, **DETAILS, "version": self.version}, {}
            if self.service == "reviews":
                return 200, self.reviews(product_id, outbound), {}
            return 200, {"id": product_id, "ratings": RATINGS}, {}
        return 404, {"error": f"{parts.path} not found on {self.service}"}, {}

    def productpage(self, query: dict[str, list[str]], outbound: dict[str, str]) -> Response:
        user = query.get("u", [""])[0]
        if user:
            outbound["end-user"] = user
        product_id = PRODUCT["id"]
        details, details_error = fetch_json(f"{self.details_url}/details/{product_id}", outbound)
        reviews, reviews_error = fetch_json(f"{self.reviews_url}/reviews/{product_id}", outbound)
        body: dict[str, Any] = {
            "product": PRODUCT,
            "details": {"error": details_error} if details_error else details,
            "reviews": {"error": reviews_error} if reviews_error else reviews,
        }
        if "end-user" in outbound:
            body["user"] = outbound["end-user"]
        # The page still renders without its parts, as a real storefront would; the header
        # lets a caller (or a test) tell a degraded page from a whole one.
        degraded = details_error is not None or reviews_error is not None
        return 200, body, {"x-weft-degraded": "1"} if degraded else {}

    def reviews(self, product_id: int, outbound: dict[str, str]) -> dict[str, Any]:
        colour = STAR_COLOURS.get(self.version)
        entries: list[dict[str, Any]] = [
            {"reviewer": reviewer, "text": text} for reviewer, text in REVIEWS
        ]
        if colour is not None:
            ratings, error = fetch_json(f"{self.ratings_url}/ratings/{product_id}", outbound)
            stars = ratings.get("ratings", {}) if isinstance(ratings, dict) else {}
            for entry in entries:
                if error is None and entry["reviewer"] in stars:
                    entry["rating"] = {"stars": stars[entry["reviewer"]], "color": colour}
                else:
                    entry["rating"] = {"error": RATINGS_UNAVAILABLE}
        return {
            "id": product_id,
            "podname": self.podname,
            "version": self.version,
            "reviews": entries,
        }


def handler_for(app: Bookinfo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive lets a sidecar reuse its upstream connections.
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes: with Nagle on, a keep-alive peer that delays
        # its ACK stalls every response by ~40 ms.
        disable_nagle_algorithm = True
        server_version = f"bookinfo-{app.service}/{app.version}"

        def do_GET(self) -> None:
            try:
                status, body, extra = app.handle(self.path, dict(self.headers.items()))
            except Exception as exc:  # one bad request must not take the service down
                status, body, extra = 500, {"error": f"{type(exc).__name__}: {exc}"}, {}
            self.send_json(status, body, extra)

        def send_json(self, status: int, body: Any, extra: Mapping[str, str]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-service-name", app.service)
            self.send_header("x-service-version", app.version)
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the sidecar's access log is where requests are recorded

    return Handler


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in SERVICES:
        print(f"usage: PORT=<port> {argv[0]} {{{','.join(SERVICES)}}}", file=sys.stderr)
        return 2
    port = os.environ.get("PORT", "")
    if not port.isdigit():
        print("set PORT to the port this service listens on", file=sys.stderr)
        return 2
    app = Bookinfo(argv[1], os.environ.get("SERVICE_VERSION", "v1"))
    keep_service_names_proxied(app.outbound_hosts())
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler_for(app))
    server.daemon_threads = True

    # Block the stop signals before the serving thread exists so it inherits the mask and
    # only this thread receives them, synchronously: no handler can interrupt a lock.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    # shutdown() blocks until serve_forever returns, so the two cannot share a thread.
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="serve", daemon=True
    )
    serving.start()
    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
