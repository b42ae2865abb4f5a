"""Requests of one S3 flush run side by side, within a request and a byte budget.

A flush of many small parts (a key template with ``{source_id}``, the open-part bound reached)
is bound by request latency, not bandwidth: one part after the other, 256 parts take three
requests each (stage, publish, delete) of tens of milliseconds on S3. So a flush runs up to
``REQUESTS`` of them at once. Uploads read their part into memory (up to the multipart
threshold), so uploads in flight also share a byte budget: no more bytes at once than one
part of the threshold's size, as when they ran one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

REQUESTS = 8


async def gather_bounded(calls: list[Callable[[], Awaitable[T]]],
                         limit: int = REQUESTS) -> list[T]:
    """Run the calls, at most `limit` at once; results in order. The first failure cancels
    the others and is raised as itself."""
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    tasks = [asyncio.ensure_future(run(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class ByteBudget:
    """Bytes in flight at most `limit`, though one request of any size may always run."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._changed = asyncio.Condition()

    async def acquire(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.in_flight == 0 or self.in_flight + size <= self.limit)
            self.in_flight += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self.in_flight -= size
            self._changed.notify_all()
