"""Reading a gRPC request stream into a queue, so a servicer can wait on requests and on
pushes at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

log = logging.getLogger("weft.xds")


async def pump_requests(requests: AsyncIterator[object], queue: asyncio.Queue[object]) -> None:
    """Put every request on `queue`, then an EOFError when the stream ends, however it ends."""
    try:
        async for request in requests:
            queue.put_nowait(request)
    except (asyncio.CancelledError, grpc.aio.AioRpcError):
        pass
    except Exception as e:  # the stream ended badly; the servicer's loop must still stop
        log.debug("stream read ended: %s", e)
    queue.put_nowait(EOFError())
