"""Hourly merges at their edges, against the local S3 server (issue 26): CSV columns that
change within an hour, and a merge that cannot be built."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_s3_sink import _sink
from tests.support.hourly import list_keys, markers, read_objects, wait_for_merges
from worker.config import Settings
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.hour_parts import hour_part_key
from worker.sinks.s3.markers import Marker, MarkerStore
from worker.sinks.s3.naming import HourSlot, marker_key, object_key
from worker.sinks.s3.sink import make_client_context, preflight

pytestmark = pytest.mark.integration

NINE = HourSlot(datetime(2026, 11, 20, 9, tzinfo=UTC))
TEN = HourSlot(datetime(2026, 11, 20, 10, tzinfo=UTC))


def _directory(slot: HourSlot) -> str:
    return f"year=2026/month=11/day=20/hour={slot.start.hour:02d}/"


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.25)


def _event(offset: int, topic: str) -> Event:
    document = {"event_id": f"e-{offset}", "type": "track", "user_id": f"u-{offset}",
                "timestamp": "2026-11-20T10:00:00.000Z", "received_at": "2026-11-20T10:00:00.000Z"}
    return Event(f"e-{offset}", document, SourceRecord(None, b"{}", KafkaPosition(topic, 0,
                                                                                 offset)))


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))


async def test_csv_columns_changed_within_an_hour_merge_each_part_under_its_own_header(
    s3_settings: Settings,
) -> None:
    """Issue 26 (1): a worker writes CSV hour parts with two columns; the partition's next
    owner runs with three (a rolling deploy) and writes more parts of the same hour. Before,
    the merge gave every row the merging worker's header: the first rows sat under the wrong
    column names, and their parts were deleted."""
    await preflight(s3_settings)
    topic = s3_settings.source_topic
    hourly = {"s3_publish": "hourly", "s3_format": "csv"}
    old = s3_settings.model_copy(update={
        **hourly, "s3_csv_columns": ["id=event_id", "type"],
        "s3_part_max_age": 600.0})  # its merger waits: the hour is not quiet yet
    new = s3_settings.model_copy(update={
        **hourly, "s3_csv_columns": ["id=event_id", "user=user_id", "type"]})
    sink, _ = await _sink(old, [0])
    try:
        await sink.write([_event(offset, topic) for offset in range(5)])
        await sink.flush()
    finally:
        await sink.stop()
    sink, _ = await _sink(new, [0])
    try:
        await sink.write([_event(offset, topic) for offset in range(5, 10)])
        await sink.flush()
        await wait_for_merges(new, timeout=60)
    finally:
        await sink.stop()

    objects = {key.rsplit("/", 1)[1]: _csv_rows(body)
               for key, body in (await read_objects(new, "logs/year=")).items()}
    assert objects == {
        f"{topic}+0+000000000000+000000000004.csv.gz": [
            {"id": f"e-{offset}", "type": "track"} for offset in range(5)],
        f"{topic}+0+000000000005+000000000009.csv.gz": [
            {"id": f"e-{offset}", "user": f"u-{offset}", "type": "track"}
            for offset in range(5, 10)]}


def _gzip_part(first: int, last: int) -> bytes:
    return gzip.compress(b"".join(b'{"event_id": "e-%d"}\n' % n for n in range(first, last + 1)))


def _parquet_part(first: int, last: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"event_id": [f"e-{n}" for n in range(first, last + 1)]}), out)
    return out.getvalue()


def _event_ids(key: str, body: bytes) -> list[str]:
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(body)).column("event_id").to_pylist()
    return [line.split(b'"')[3].decode() for line in gzip.decompress(body).splitlines()]


@pytest.mark.parametrize(("extension", "make"), [("ndjson.gz", _gzip_part),
                                                 ("parquet", _parquet_part)])
async def test_a_merge_with_a_truncated_part_is_parked_and_the_partition_goes_on(
    s3_settings: Settings, extension: str, make: Callable[[int, int], bytes],
) -> None:
    """Issue 26 (12): an hour part cut short. Before, a gzip hour was merged into an object
    every reader stops in (and its parts deleted), a Parquet hour failed at every tick and every
    later hour of the partition waited behind it. Now the hour is parked with its parts as they
    are, said in the readiness notice and the metric, the next hour merges, and once the part is
    replaced with a good copy the parked hour merges too."""
    await preflight(s3_settings)
    topic, prefix = s3_settings.source_topic, s3_settings.s3_prefix
    parts = {}
    for slot, first, last in [(NINE, 0, 9), (NINE, 10, 19), (TEN, 20, 29)]:
        final = object_key(prefix, _directory(slot), topic, 0, first, last, extension)
        parts[hour_part_key(prefix, topic, 0, slot, final)] = make(first, last)
    bad = list(parts)[1]
    async with make_client_context(s3_settings) as client:
        for key, body in parts.items():
            await client.put_object(Bucket=s3_settings.s3_bucket, Key=key,
                                    Body=body[:-30] if key == bad else body)
        await MarkerStore(client, s3_settings.s3_bucket).write(  # as a dead owner leaves it
            marker_key(prefix, topic, 0), Marker(30, hour_parts=tuple(parts)), None, "dead")

    sink, _ = await _sink(s3_settings, [0])
    try:
        async def ten_merged() -> bool:
            return any("hour=10/" in key for key in await list_keys(s3_settings, "logs/year="))

        await _until(ten_merged, "hour 10 merged")
        await _until(lambda: asyncio.sleep(0, bool(sink.parked_merges)), "hour 9 parked")
        (marker,) = (await markers(s3_settings)).values()
        (parked,) = marker["parked"]
        assert parked["cause"] == "corrupt_part" and bad in parked["reason"]
        assert "merge" not in marker
        assert marker["hour_parts"] == [key for key in parts if "T09" in key]  # not planned
        notice = sink.notice() or ""
        assert "hour=09" in notice and "parked" in notice
        in_layout = await list_keys(s3_settings, "logs/year=")
        assert [key for key in in_layout if "hour=09/" in key] == []
        left = await read_objects(s3_settings, prefix + "_sluice/hour-parts/")
        assert left == {key: body[:-30] if key == bad else body
                        for key, body in parts.items() if "T09" in key}

        sink.merges._checks.check_seconds = 0.2  # type: ignore[union-attr]  # not a minute
        async with make_client_context(s3_settings) as client:
            await client.put_object(Bucket=s3_settings.s3_bucket, Key=bad, Body=parts[bad])
        await wait_for_merges(s3_settings, timeout=60)
        await _until(lambda: asyncio.sleep(0, not sink.parked_merges), "unparked")
        assert sink.notice() is None
    finally:
        await sink.stop()
    objects = await read_objects(s3_settings, "logs/year=")
    assert {key.rsplit("/", 1)[1]: _event_ids(key, body) for key, body in objects.items()} == {
        f"{topic}+0+000000000000+000000000019.{extension}": [f"e-{n}" for n in range(20)],
        f"{topic}+0+000000000020+000000000029.{extension}": [f"e-{n}" for n in range(20, 30)]}
    assert "parked" not in next(iter((await markers(s3_settings)).values()))
