"""The control plane's admin HTTP API: config apply/delete, workload registration, debug.

Handlers see the control plane only through `AdminBackend`. Every body is checked before
anything is stored; a bad one is answered 400 naming what was wrong, a too large one 413.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from weft import __version__
from weft.api.serialize import to_dict
from weft.contract.registration import Heartbeat, Registration, RootRotation, WorkloadRef
from weft.contract.wire import MessageError, parse_message
from weft.controlplane.admin_backend import AdminBackend, Conflict, NotFound, Refused
from weft.controlplane.apply import apply_text
from weft.errors import ConfigError
from weft.telemetry import exposition

log = logging.getLogger("weft.controlplane")

BACKEND_KEY: web.AppKey[AdminBackend] = web.AppKey("backend")

CONFIG_BODY_LIMIT = 16 * 1024 * 1024  # one YAML file of config: 10,000 objects fit
MESSAGE_BODY_LIMIT = 64 * 1024  # a registration, heartbeat or rotation step

M = TypeVar("M", bound=BaseModel)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {_size(limit)}")
        self.limit = limit


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


def _cp(request: web.Request) -> AdminBackend:
    """The control plane, as far as the admin API may see it."""
    return request.app[BACKEND_KEY]


def _error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status)


@web.middleware
async def _answer_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Whatever a request did wrong is answered 4xx with what and how to fix it; a failure of
    the control plane's own is logged and answered 500 without taking it down."""
    if request.charset is not None and not _known_charset(request.charset):
        return _error(400, f"the request body's charset {request.charset!r} is unknown: use utf-8")
    try:
        return await handler(request)
    except (MessageError, ConfigError) as e:
        return _error(400, str(e), [str(p) for p in e.problems])
    except Refused as e:
        return _error(400, str(e))
    except NotFound as e:
        return _error(404, str(e))
    except Conflict as e:
        return _error(409, str(e))
    except BodyTooLarge as e:
        return _error(413, str(e))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, str(BodyTooLarge(CONFIG_BODY_LIMIT)))
    except UnicodeDecodeError as e:
        return _error(400, f"the request body is not UTF-8 text ({e.reason} at offset {e.start})")
    except RecursionError:
        return _error(400, "the request body is nested too deeply to read")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return _error(500, "the control plane failed on this request; its log says why")


def _known_charset(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _message(request: web.Request, model: type[M], what: str) -> M:
    return parse_message(model, await _read_body(request, MESSAGE_BODY_LIMIT), what)


def _workload_ref(request: web.Request) -> WorkloadRef:
    return parse_message(WorkloadRef, dict(request.match_info), "workload path")


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": _cp(request).ready(), "version": __version__})


async def apply_config(request: web.Request) -> web.Response:
    """Validate a whole YAML file and store it; nothing is stored if any document is bad."""
    source = request.query.get("source", "<request>")
    text = await request.text()
    delete = request.query.get("delete") == "true"
    try:
        answer = await apply_text(_cp(request).store, text, source, delete=delete)
    except ConfigError as e:
        return _error(400, str(e), [str(p) for p in e.problems])
    return web.json_response(answer)


async def config_status(request: web.Request) -> web.Response:
    cp = _cp(request)
    return web.json_response(
        {
            "objects": [
                {"kind": o.kind, "namespace": o.metadata.namespace, "name": o.metadata.name}
                for o in cp.store.objects()
            ],
            "problems": [str(p) for p in cp.store.problems()],
        }
    )


async def register(request: web.Request) -> web.Response:
    """Auto-registration of a WorkloadEntry, from a WorkloadGroup when one is named."""
    registration = await _message(request, Registration, "registration")
    answer = _cp(request).registry.register(registration)
    return web.json_response(answer.to_wire())


async def report(request: web.Request) -> web.Response:
    ref = _workload_ref(request)
    beat = await _message(request, Heartbeat, "heartbeat")
    answer = _cp(request).registry.heartbeat(ref.namespace, ref.name, beat)
    return web.json_response(answer.to_wire())


async def deregister(request: web.Request) -> web.Response:
    ref = _workload_ref(request)
    return web.json_response({"removed": _cp(request).registry.deregister(ref.namespace, ref.name)})


async def list_workloads(request: web.Request) -> web.Response:
    workloads = _cp(request).registry.list()
    if request.query.get("format") == "workloadentry":
        return web.json_response([to_dict(w.to_workload_entry()) for w in workloads])
    return web.json_response([w.to_json() for w in workloads])


async def syncz(request: web.Request) -> web.Response:
    """Every connected proxy and, per xDS type, whether it has what we last sent."""
    return web.json_response(_cp(request).xds.sync_status())


async def config_dump(request: web.Request) -> web.Response:
    """The config the control plane generates for one proxy, as Envoy-style JSON."""
    return web.json_response(_cp(request).xds.config_dump(request.query.get("proxy", "")))


async def ca_status(request: web.Request) -> web.Response:
    return web.json_response(_cp(request).ca.status())


async def ca_rotate(request: web.Request) -> web.Response:
    rotation = await _message(request, RootRotation, "root rotation")
    return web.json_response(_cp(request).ca.rotate_root(rotation))


async def metrics(request: web.Request) -> web.Response:
    body = _cp(request).metrics()
    return web.Response(body=body, headers={"Content-Type": exposition.CONTENT_TYPE})


def admin_app(backend: AdminBackend) -> web.Application:
    app = web.Application(client_max_size=CONFIG_BODY_LIMIT, middlewares=[_answer_errors])
    app[BACKEND_KEY] = backend
    app.router.add_get("/ready", ready)
    app.router.add_post("/v1/config", apply_config)
    app.router.add_get("/v1/config", config_status)
    app.router.add_post("/v1/workloads", register)
    app.router.add_get("/v1/workloads", list_workloads)
    app.router.add_put("/v1/workloads/{namespace}/{name}/health", report)
    app.router.add_delete("/v1/workloads/{namespace}/{name}", deregister)
    app.router.add_get("/debug/syncz", syncz)
    app.router.add_get("/debug/config_dump", config_dump)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/ca", ca_status)
    app.router.add_post("/v1/ca/rotate", ca_rotate)
    return app
