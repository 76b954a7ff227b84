"""The control plane's admin HTTP API: config apply/delete, workload registration, debug."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import json_format

from weft import __version__
from weft.controlplane.apply import apply_text
from weft.errors import ConfigError, WeftError
from weft.registry.groups import find_group, from_group, group_probe
from weft.registry.local import Workload
from weft.telemetry import exposition
from weft.xds import types

if TYPE_CHECKING:
    from weft.controlplane.app import ControlPlane

CP_KEY: web.AppKey[ControlPlane] = web.AppKey("control_plane")


def _cp(request: web.Request) -> ControlPlane:
    return request.app[CP_KEY]


def _error(status: int, message: str, problems: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status)


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": _cp(request).ready.is_set(), "version": __version__})


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
    cp = _cp(request)
    try:
        data = await request.json()
        workload = Workload.from_json(data)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as e:
        return _error(400, f"bad registration: {e}")
    group = None
    if workload.group:
        group = find_group(cp.store.objects(), workload.namespace, workload.group)
        if group is None:
            return _error(
                400,
                f"WorkloadGroup {workload.namespace}/{workload.group} does not exist: "
                "apply it first, or register without a group",
            )
        workload = from_group(workload, group, data)
    cp.registry.register(workload)
    return web.json_response(
        {
            "registered": f"{workload.namespace}/{workload.name}",
            "entry": workload.to_workload_entry(),
            "probe": group_probe(group),
            **cp.citadel.credentials_for(workload),
        }
    )


async def report(request: web.Request) -> web.Response:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    body = await request.json()
    cp = _cp(request)
    if body.get("certRoot"):
        cp.citadel.cert_roots[(ns, name)] = str(body["certRoot"])
    try:
        cp.registry.report(ns, name, bool(body.get("healthy", True)))
    except KeyError:
        return _error(404, f"workload {ns}/{name} is not registered: register it again")
    # Each heartbeat refreshes the credential and the trust bundle (root rotation).
    workload = cp.registry.get(ns, name)
    return web.json_response({"ok": True, **cp.citadel.credentials_for(workload)})


async def deregister(request: web.Request) -> web.Response:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    removed = _cp(request).registry.deregister(ns, name)
    _cp(request).citadel.cert_roots.pop((ns, name), None)
    return web.json_response({"removed": removed})


async def list_workloads(request: web.Request) -> web.Response:
    workloads = _cp(request).registry.workloads()
    if request.query.get("format") == "workloadentry":
        return web.json_response([w.to_workload_entry() for w in workloads])
    return web.json_response([w.to_json() for w in workloads])


async def syncz(request: web.Request) -> web.Response:
    """Every connected proxy and, per xDS type, whether it has what we last sent."""
    cp = _cp(request)
    out = []
    for conn in sorted(cp.ads.connections.values(), key=lambda c: c.proxy.id):
        status = conn.status()
        latest = cp.ads.config_for(conn.proxy)
        for type_url in types.PUSH_ORDER:
            entry = status["types"][types.short_name(type_url)]  # type: ignore[index]
            if entry["status"] == "SYNCED" and entry["sent"] != latest[type_url].version:
                entry["status"] = "STALE"
        out.append(status)
    return web.json_response(
        {"snapshot": cp.ads.snapshot.version, "pending": cp.rebuild_pending, "proxies": out}
    )


async def config_dump(request: web.Request) -> web.Response:
    """The config the control plane generates for one proxy, as Envoy-style JSON."""
    cp = _cp(request)
    conn = cp.ads.find(request.query.get("proxy", ""))
    if conn is None:
        names = ", ".join(sorted(c.proxy.id for c in cp.ads.connections.values())) or "none"
        return _error(404, f"no connected proxy matches {request.query.get('proxy')!r} ({names})")
    config = cp.ads.config_for(conn.proxy)
    dump: dict[str, Any] = {"proxy": conn.proxy.id, "adminPort": conn.proxy.admin_port}
    for type_url in types.PUSH_ORDER:
        resources = config[type_url]
        dump[types.short_name(type_url)] = {
            "version": resources.version,
            "resources": [
                json_format.MessageToDict(_unpack(any_)) for any_ in resources.items.values()
            ],
        }
    return web.json_response(dump)


def _unpack(any_: Any) -> Any:
    from google.protobuf import symbol_database

    name = any_.type_url.rsplit("/", 1)[-1]
    cls = symbol_database.Default().GetSymbol(name)
    msg = cls()
    any_.Unpack(msg)
    return msg


async def ca_status(request: web.Request) -> web.Response:
    return web.json_response(_cp(request).citadel.status())


async def ca_rotate(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        status = _cp(request).citadel.rotate_root(
            str(body.get("step", "")), force=bool(body.get("force"))
        )
    except WeftError as e:
        return _error(409, str(e))
    return web.json_response(status)


async def metrics(request: web.Request) -> web.Response:
    body = _cp(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": exposition.CONTENT_TYPE})


def admin_app(cp: ControlPlane) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CP_KEY] = cp
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
