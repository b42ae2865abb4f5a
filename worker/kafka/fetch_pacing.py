"""Empty fetches paced: at most one every ``EMPTY_FETCH_PAUSE`` seconds per broker.

A Kafka broker holds a fetch request until it has ``fetch_min_bytes`` of records or
``fetch_max_wait_ms`` has passed, so a consumer that has caught up sends a couple of fetches a
second. A broker (or a Kafka-protocol proxy or emulator) that answers an empty fetch at once
turns aiokafka's fetch loop into a spin: the local stack's broker was answered about 6,000 times
a second by one idle consumer, a core's worth of CPU shared between the worker's consumer
thread (holding the GIL the pipeline needs) and the broker. In the benchmark's "Sluice → S3"
run, 12,339 of 12,341 fetch requests came back empty, and the consumer thread held the GIL
longer than the whole pipeline did.

``pace_empty_fetches`` wraps one aiokafka fetcher: a fetch that brings no records and came back
sooner than the pause keeps its broker's fetch slot until the pause is over (aiokafka sends at
most one fetch per broker at a time, so the next one waits). A broker that holds fetches is
never slowed down: its empty answers take ``fetch_max_wait_ms`` (1.5 s under Faust), longer
than the pause. Fetches that bring records are never delayed. The cost on a broker that does
not hold fetches: a record produced to a caught-up partition waits at most the pause longer.

Relies on aiokafka's ``Fetcher._proc_fetch_request``; ``tests/unit/kafka/test_faust_contract.py``
pins it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

# At most 20 empty fetches a second per broker, and at most 50 ms of added latency for a record
# produced to a caught-up partition, on a broker that does not hold fetches.
EMPTY_FETCH_PAUSE = 0.05

Sleep = Callable[[float], Awaitable[None]]


def pace_empty_fetches(
    fetcher: Any,
    pause: float = EMPTY_FETCH_PAUSE,
    *,
    clock: Callable[[], float] = monotonic,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Make the aiokafka ``fetcher`` wait out ``pause`` after an early empty fetch answer."""
    fetch = fetcher._proc_fetch_request

    async def paced_fetch(assignment: Any, node_id: int, request: Any) -> bool:
        started = clock()
        has_new_data: bool = await fetch(assignment, node_id, request)
        if not has_new_data:
            remaining = pause - (clock() - started)
            if remaining > 0:
                try:
                    await sleep(remaining)
                except asyncio.CancelledError:
                    # As aiokafka's own fetch: its close() cancels the fetch tasks and awaits
                    # them expecting an answer, not the cancellation.
                    return has_new_data
        return has_new_data

    fetcher._proc_fetch_request = paced_fetch
