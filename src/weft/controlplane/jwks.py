"""Fetches the JWKS documents RequestAuthentication names by jwksUri, for Envoy to use inline.

Envoy gets keys inline so a proxy never needs to reach the issuer itself. A document that
cannot be fetched keeps its last good version; until one exists the rule's tokens get 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import aiohttp

log = logging.getLogger("weft.jwks")

REFRESH_SECONDS = 20 * 60.0  # Istio's default JWKS refresh
RETRY_SECONDS = 5.0


class JwksFetcher:
    """Owns one task per jwksUri; `documents()` is what the next snapshot uses."""

    def __init__(self, on_change: Callable[[], None], timeout: float = 5.0) -> None:
        self._on_change = on_change
        self._timeout = timeout
        self._documents: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def documents(self) -> dict[str, str]:
        return dict(self._documents)

    def watch(self, uris: set[str]) -> None:
        """Fetch the URIs not yet watched; stop watching those no longer named."""
        for uri in set(self._tasks) - uris:
            self._tasks.pop(uri).cancel()
            self._documents.pop(uri, None)
        for uri in uris - set(self._tasks):
            self._tasks[uri] = asyncio.get_running_loop().create_task(self._follow(uri))

    async def _follow(self, uri: str) -> None:
        while True:
            ok = await self._fetch(uri)
            await asyncio.sleep(REFRESH_SECONDS if ok else RETRY_SECONDS)

    async def _fetch(self, uri: str) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.get(uri) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                text = await resp.text()
            keys = json.loads(text).get("keys")
            if not isinstance(keys, list):
                raise ValueError("the document has no 'keys' list")
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as e:
            log.warning("cannot fetch JWKS %s (%s); keeping the last good keys", uri, e)
            return False
        if self._documents.get(uri) != text:
            self._documents[uri] = text
            log.info("fetched JWKS %s (%d keys)", uri, len(keys))
            self._on_change()
        return True

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
