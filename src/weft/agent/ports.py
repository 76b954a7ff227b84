"""Local TCP ports: pick free ones, and wait for one to accept connections."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
from pathlib import Path

_CONNECT_ATTEMPT_S = 0.5
_RETRY_INTERVAL_S = 0.02


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing is bound to right now."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """Return `n` distinct TCP ports on `host` that nothing is bound to right now.

    Ports come from below the kernel's ephemeral range when there is room: a port handed out
    for a listener can then not be taken meanwhile by some outgoing connection's local end,
    which on a busy machine happens between picking a port and binding it. Ports handed out
    recently by this process are not handed out again.
    """
    if n < 0:
        raise ValueError(f"cannot pick {n} ports")
    low, _ = _ephemeral_range()
    picked: list[int] = []
    attempts = 0
    while len(picked) < n and low > _LISTEN_FLOOR + 1000 and attempts < 50 * (n + 1):
        attempts += 1
        port = _random.randrange(_LISTEN_FLOOR, low)
        if port in _recent or port in picked or not _bindable(host, port):
            continue
        picked.append(port)
    if len(picked) < n:
        picked += _kernel_ports(n - len(picked), host, exclude=set(picked) | set(_recent))
    _recent.extend(picked)
    return picked


_LISTEN_FLOOR = 20000  # well above the well-known and registered ports services use
_recent: collections.deque[int] = collections.deque(maxlen=4096)
_random = random.SystemRandom()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_ports(n: int, host: str, exclude: set[int]) -> list[int]:
    """Ports the kernel picks (from the ephemeral range): the fallback."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        # Every socket stays bound until all are picked, so no port comes twice.
        while len(ports) < n and len(sockets) < 4 * n + 16:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
            if (port := sock.getsockname()[1]) not in exclude:
                ports.append(port)
        return ports
    finally:
        for sock in sockets:
            sock.close()


async def is_listening(host: str, port: int, timeout: float = _CONNECT_ATTEMPT_S) -> bool:
    """Whether a TCP connect to `host:port` succeeds within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until `host:port` accepts TCP connections; TimeoutError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout}s")
        if await is_listening(host, port, min(_CONNECT_ATTEMPT_S, remaining)):
            return
        await asyncio.sleep(min(_RETRY_INTERVAL_S, max(0.0, deadline - loop.time())))
