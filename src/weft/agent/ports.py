"""Local TCP ports: pick free ones, and wait for one to accept connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket

_CONNECT_ATTEMPT_S = 0.5
_RETRY_INTERVAL_S = 0.02


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing is bound to right now."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """Return `n` distinct TCP ports on `host` that nothing is bound to right now.

    The ports are free only until someone else binds them: use them promptly.
    """
    if n < 0:
        raise ValueError(f"cannot pick {n} ports")
    sockets: list[socket.socket] = []
    try:
        # Every socket stays bound until all are picked, so the kernel cannot hand out
        # the same port twice.
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
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
