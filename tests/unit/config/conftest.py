from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from weft.api import DestinationRule, DestinationRuleSpec, ObjectMeta, Subset

MakeRule = Callable[..., DestinationRule]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


def _destination_rule(name: str, namespace: str = "default", *subsets: str) -> DestinationRule:
    return DestinationRule(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=DestinationRuleSpec(
            host=name, subsets=[Subset(name=s, labels={"version": s}) for s in subsets]
        ),
    )


@pytest.fixture
def make_rule() -> MakeRule:
    """DestinationRule(name, namespace="default", *subset_names)."""
    return _destination_rule


async def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


@pytest.fixture
def eventually() -> Eventually:
    """Await until a condition holds, failing after a deadline (no fixed sleeps)."""
    return _eventually
