"""Issue 15's S3 ownership scenarios against the real S3 server: a write that arrives after a
revocation, and an old owner's upload that lands after its successor took the partition over.
Each sink is driven through the sink contract (assign, write, flush, forget)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.integration.test_s3_sink import _event, _objects, _sink
from tests.support.fault_proxy import FaultProxy
from worker.config import Settings
from worker.sinks.s3.sink import preflight

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _archived_ids(settings: Settings) -> Counter[str]:
    """Every event id in the query layout (what Athena or DuckDB would read), with counts."""
    objects = await _objects(settings, "logs/year=")
    return Counter(orjson.loads(line)["event_id"] for body in objects.values()
                   for line in gzip.decompress(body).splitlines())


async def test_a_stale_write_after_revocation_cannot_reclaim_the_partition(
    s3_settings: Settings,
) -> None:
    """Issue 15 (2): A lost the partition to B, then a write A had started reaches its sink.
    Before: A re-claimed the marker lazily, B's flush lost records 1-2 and a later owner was
    told they were written. Now A ignores it and B's records are archived, once each."""
    await preflight(s3_settings)
    topic, partition = s3_settings.source_topic, (s3_settings.source_topic, 0)
    stale, stale_outcomes = await _sink(s3_settings, [0])
    await stale.forget([partition])  # revoked from A ...
    owner, outcomes = await _sink(s3_settings, [0])
    try:
        await owner.write([_event(offset, 0, topic) for offset in (1, 2)])  # ... B owns it
        await stale.write([_event(1, 0, topic)])  # A's write arrives late
        await stale.flush()
        await owner.flush()
    finally:
        await stale.stop()
        await owner.stop()
    assert stale_outcomes.delivered == [] and outcomes.lost == []
    assert outcomes.delivered == ["e-1", "e-2"]

    successor, successor_outcomes = await _sink(s3_settings)
    try:
        await successor.write([_event(offset, 0, topic) for offset in (1, 2, 3)])
        await successor.flush()
    finally:
        await successor.stop()
    assert successor_outcomes.delivered == ["e-1", "e-2", "e-3"]
    assert await _archived_ids(s3_settings) == {"e-1": 1, "e-2": 1, "e-3": 1}


async def test_an_old_owners_late_upload_adds_nothing_to_the_archive(
    s3_settings: Settings,
) -> None:
    """Issue 15 (5): A's upload hangs (a paused process, a drain that timed out), B takes the
    partition over and writes the records with other part boundaries, then A's upload lands.
    Before: S3 held records 0-2 twice. Now A's upload is staged and never published."""
    await preflight(s3_settings)
    topic, partition = s3_settings.source_topic, (s3_settings.source_topic, 0)
    proxy = FaultProxy(s3_settings.s3_endpoint_url or "", signed=True).start()
    try:
        old, old_outcomes = await _sink(s3_settings.model_copy(
            update={"s3_endpoint_url": proxy.url}), [0])
        new, new_outcomes = await _sink(s3_settings, [])
        try:
            await old.write([_event(offset, 0, topic) for offset in range(3)])
            proxy.hold_uploads()
            old_flush = asyncio.create_task(old.flush())
            await _until(lambda: proxy.held == 1, 10)
            await old.forget([partition])  # revoked while its upload hangs

            new.assign([partition])  # the next owner; one more record has arrived meanwhile
            await new.write([_event(offset, 0, topic) for offset in range(4)])
            await new.flush()
            proxy.release()
            await asyncio.wait_for(old_flush, 30)
        finally:
            await old.stop()
            await new.stop()
    finally:
        proxy.stop()
    assert old_outcomes.delivered == []
    assert new_outcomes.delivered == ["e-0", "e-1", "e-2", "e-3"]
    assert await _archived_ids(s3_settings) == {"e-0": 1, "e-1": 1, "e-2": 1, "e-3": 1}
