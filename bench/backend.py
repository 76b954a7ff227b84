"""The HTTP backend of the data-plane benchmark: nginx from Debian, with a config of our own.

One worker process, no access log, keep-alive without a request limit (so Envoy's upstream
connections are never recycled mid-run), and a fixed 1 KiB body answered from memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

BODY_BYTES = 1024
# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"


class BackendMissing(RuntimeError):
    """nginx is not installed."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path=_SEARCH_PATH)
    if found is None:
        raise BackendMissing(
            "nginx is not installed: run `make bench` (it installs Debian's nginx-light), "
            "or `apt-get install -y nginx-light`"
        )
    return found


def body() -> str:
    """The response body: BODY_BYTES printable bytes, safe inside an nginx quoted string."""
    line = "weft data-plane benchmark backend "
    return (line * (BODY_BYTES // len(line) + 1))[: BODY_BYTES - 1] + "\n"


def config(work_dir: Path, port: int) -> Path:
    """Write nginx.conf for 127.0.0.1:`port` in `work_dir`, where every file nginx writes stays."""
    work_dir.mkdir(parents=True, exist_ok=True)
    temp = {name: work_dir / name for name in ("body", "proxy", "fastcgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    text = f"""daemon off;
master_process on;
worker_processes 1;
pid {work_dir / "nginx.pid"};
error_log {work_dir / "error.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{body().replace(chr(10), chr(92) + "n")}";
        }}
    }}
}}
"""
    path = work_dir / "nginx.conf"
    path.write_text(text)
    return path


def command(conf: Path) -> list[str]:
    """nginx in the foreground with `conf`; its own error log from the first line it writes."""
    return [
        nginx_binary(),
        "-p",
        str(conf.parent),
        "-e",
        str(conf.parent / "error.log"),
        "-c",
        str(conf),
    ]
