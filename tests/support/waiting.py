"""Waiting for a condition instead of sleeping: tests synchronise on what they can observe.

A fixed sleep is a guess about how long something takes: too short on a loaded machine (the test
fails for nothing), too long everywhere else, and silent when the awaited thing never happens.
``eventually`` polls a condition until it holds and fails with what was last seen when it does
not hold in time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(condition: Callable[[], T | Awaitable[T]], *, timeout: float, what: str,
                     interval: float = 0.2) -> T:
    """Poll `condition` (a plain or an async callable) until it returns something truthy, and
    return that; after `timeout` seconds fail, naming `what` was awaited and the last value.

    An ``AssertionError`` raised by the condition fails at once: a worker that died while we
    waited for it does not get better by waiting longer.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} "
                                 f"(last seen: {value!r})")
        await asyncio.sleep(interval)
