from __future__ import annotations

import asyncio
import socket

import pytest

from weft.agent.ports import free_port, free_ports, is_listening, wait_port


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(1024 <= port <= 65535 for port in ports)


async def test_wait_port_returns_once_something_listens() -> None:
    port = free_port()
    assert not await is_listening("127.0.0.1", port)
    waiting = asyncio.create_task(wait_port("127.0.0.1", port, timeout=10))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        await asyncio.wait_for(waiting, 10)
        assert await is_listening("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()


async def test_wait_port_times_out_when_nothing_listens() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=str(port)):
        await wait_port("127.0.0.1", port, timeout=0.2)
