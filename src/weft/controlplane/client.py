"""A small blocking client for the control plane's admin API, used by the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from weft.controlplane.address import admin_address
from weft.errors import ConfigError, ConfigProblem, ControlPlaneUnavailable

# The CLI may run inside a workload whose HTTP_PROXY is its sidecar: never use env proxies.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AdminClient:
    def __init__(self, host: str | None = None, port: int | None = None, timeout: float = 10):
        default_host, default_port = admin_address()
        self.host = host or default_host
        self.port = port or default_port
        self.timeout = timeout

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/yaml")
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read())
            except ValueError:
                detail = {"error": str(e)}
            if e.code == 400 and "problems" in detail:
                raise ConfigError([ConfigProblem(p) for p in detail["problems"]]) from None
            raise ControlPlaneUnavailable(
                f"control plane at {self.base} answered {e.code}: {detail.get('error', detail)}"
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise ControlPlaneUnavailable(
                f"cannot reach the control plane admin API at {self.base} ({e}); start it with "
                "`weft control-plane --config-dir DIR` or point WEFT_ADMIN=HOST:PORT at it"
            ) from None

    def apply(self, text: str, source: str, delete: bool = False) -> Any:
        query = f"?source={quote(source)}" + ("&delete=true" if delete else "")
        return self.request("POST", "/v1/config" + query, text.encode())

    def syncz(self) -> Any:
        return self.request("GET", "/debug/syncz")

    def config_dump(self, proxy: str) -> Any:
        return self.request("GET", f"/debug/config_dump?proxy={quote(proxy)}")

    def workloads(self) -> Any:
        return self.request("GET", "/v1/workloads")
