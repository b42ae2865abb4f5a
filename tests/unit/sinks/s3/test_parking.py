"""Parked merges (issue 26, item 12): a merge that cannot be built is set aside with its parts,
the partition's other hours merge on, and it is tried again when a part changes. The merger
runs for real against a bucket kept in memory."""

from __future__ import annotations

import asyncio
import gzip
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.memory_bucket import MemoryBucket
from worker.sinks.s3.building import Head
from worker.sinks.s3.hour_parts import hour_part_key
from worker.sinks.s3.hourly import HourlyMerger
from worker.sinks.s3.markers import Marker, MergeOutput, MergePlan, ParkedMerge
from worker.sinks.s3.naming import HourSlot, object_key
from worker.sinks.s3.parking import changed, describe, retry_plan

NINE = HourSlot(datetime(2026, 11, 20, 9, tzinfo=UTC))
TEN = HourSlot(datetime(2026, 11, 20, 10, tzinfo=UTC))
ELEVEN = HourSlot(datetime(2026, 11, 20, 11, tzinfo=UTC))


def _directory(slot: HourSlot) -> str:
    return f"year=2026/month=11/day=20/hour={slot.start.hour:02d}/"


def _part(slot: HourSlot, first: int, last: int) -> str:
    final = object_key("logs/", _directory(slot), "events", 3, first, last, "ndjson.gz")
    return hour_part_key("logs/", "events", 3, slot, final)


def _lines(first: int, last: int) -> bytes:
    return b"".join(b'{"offset": %d}\n' % offset for offset in range(first, last + 1))


class Markers:
    async def write(self, where: str, marker: Marker, etag: str | None, owner: str) -> Marker:
        return marker


class State:
    def __init__(self, hour_parts: tuple[str, ...], claim: str = "me/1") -> None:
        self.key = ("events", 3)
        self.claim = claim
        self.marker = Marker(100, hour_parts=hour_parts)
        # The partition fills a part of 11:00: 09:00 and 10:00 are due at once.
        self.parts = {_directory(ELEVEN): type("Part", (), {"slot": ELEVEN})()}
        self.lock = asyncio.Lock()
        self.detached = False


def _merger(bucket: MemoryBucket, tmp_path: Path) -> HourlyMerger:
    merger = HourlyMerger("logs/", bucket, Markers(), tmp_path,  # type: ignore[arg-type]
                          grace=0.0, quiet=300.0, target_bytes=1 << 20, header="",
                          lose=print)
    merger._checks.check_seconds = 0.0  # look at parked merges at every call
    return merger


def _merged(bucket: MemoryBucket) -> dict[str, bytes]:
    return {key: gzip.decompress(data) for key, data in bucket.objects.items()
            if key.startswith("logs/year=")}


def _hours() -> dict[str, bytes]:
    """Hour parts of 09:00 (the second one truncated) and of 10:00."""
    return {_part(NINE, 0, 9): gzip.compress(_lines(0, 9)),
            _part(NINE, 10, 19): gzip.compress(_lines(10, 19))[:-12],
            _part(TEN, 20, 29): gzip.compress(_lines(20, 29))}


async def test_a_merge_that_cannot_be_built_is_parked_and_the_other_hours_merge(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    hours = _hours()
    bucket = MemoryBucket(hours)
    merger, state = _merger(bucket, tmp_path), State(tuple(hours))
    with caplog.at_level(logging.ERROR):
        await merger.merge_partition(state)  # type: ignore[arg-type]
        await merger.merge_partition(state)  # type: ignore[arg-type]  # unchanged: not again
    # 10:00 is merged; 09:00 is parked, its parts untouched, nothing of it in the query layout.
    assert _merged(bucket) == {
        "logs/" + _directory(TEN) + "events+3+000000000020+000000000029.ndjson.gz":
            _lines(20, 29)}
    assert {key: bucket.objects[key] for key in hours if key in bucket.objects} == {
        key: data for key, data in hours.items() if "T09" in key}
    (parked,) = state.marker.parked
    assert parked.cause == "corrupt_part" and _part(NINE, 10, 19) in parked.reason
    # Still listed (an earlier version finds them after a rollback), never planned again.
    assert state.marker.merge is None
    assert state.marker.hour_parts == tuple(key for key in hours if "T09" in key)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "parked" in errors[0] and "truncated" in errors[0], errors
    assert "hour=09" in describe(state.key, parked)


async def test_a_parked_merge_is_tried_again_once_its_bad_part_is_replaced(
    tmp_path: Path,
) -> None:
    hours = _hours()
    bucket = MemoryBucket(hours)
    merger, state = _merger(bucket, tmp_path), State(tuple(hours))
    await merger.merge_partition(state)  # type: ignore[arg-type]
    assert state.marker.parked
    bucket.objects[_part(NINE, 10, 19)] = gzip.compress(_lines(10, 19))  # a good copy
    await merger.merge_partition(state)  # type: ignore[arg-type]
    assert state.marker.parked == () and state.marker.merge is None
    assert state.marker.hour_parts == ()
    assert _merged(bucket)["logs/" + _directory(NINE) + "events+3+000000000000+000000000019"
                           ".ndjson.gz"] == _lines(0, 19)
    assert not any("_sluice/hour-parts/" in key for key in bucket.objects)


async def test_a_parked_merge_whose_bad_part_was_deleted_merges_the_parts_left(
    tmp_path: Path,
) -> None:
    hours = _hours()
    bucket = MemoryBucket(hours)
    merger, state = _merger(bucket, tmp_path), State(tuple(hours))
    await merger.merge_partition(state)  # type: ignore[arg-type]
    del bucket.objects[_part(NINE, 10, 19)]  # the operator gives its events up
    await merger.merge_partition(state)  # type: ignore[arg-type]
    assert state.marker.parked == () and state.marker.hour_parts == ()
    assert _merged(bucket)["logs/" + _directory(NINE) + "events+3+000000000000+000000000009"
                           ".ndjson.gz"] == _lines(0, 9)


async def test_an_unchanged_parked_merge_is_tried_once_by_each_new_claim(
    tmp_path: Path,
) -> None:
    hours = _hours()
    # A new version may build what an older one could not: its first claim tries once.
    bucket = MemoryBucket(hours)
    merger, state = _merger(bucket, tmp_path), State(tuple(hours))
    await merger.merge_partition(state)  # type: ignore[arg-type]
    since = state.marker.parked[0]
    tries = []
    original = merger.builder.build_and_upload

    async def counted(output: MergeOutput, header: str) -> None:
        tries.append(output.key)
        await original(output, header)

    merger.builder.build_and_upload = counted  # type: ignore[method-assign]
    await merger.merge_partition(state)  # type: ignore[arg-type]
    assert tries == []  # the claim that parked it tried it
    state.claim = "me/2"  # the partition was assigned again
    await merger.merge_partition(state)  # type: ignore[arg-type]
    await merger.merge_partition(state)  # type: ignore[arg-type]
    assert len(tries) == 1
    (again,) = state.marker.parked
    assert (again.plan, again.cause) == (since.plan, since.cause)


def test_a_retry_keeps_the_objects_that_exist_and_renames_the_ones_short_of_a_part() -> None:
    one = MergeOutput("logs/d/events+3+000000000000+000000000019.ndjson.gz",
                      ("p/events+3+000000000000+000000000009.ndjson.gz",
                       "p/events+3+000000000010+000000000019.ndjson.gz"))
    two = MergeOutput("logs/d/events+3+000000000020+000000000039.ndjson.gz",
                      ("p/events+3+000000000020+000000000029.ndjson.gz",
                       "p/events+3+000000000030+000000000039.ndjson.gz"))
    entry = ParkedMerge(MergePlan((one, two)), "missing_part", "…", "2026-11-20T12:00:00+00:00",
                        tuple((part, "e") for part in one.parts + two.parts))
    heads: dict[str, Head | None] = {part: Head(10, "e") for part in one.parts + two.parts}
    assert not changed(entry, heads)
    heads[one.parts[1]] = heads[two.parts[0]] = None
    assert changed(entry, heads)
    plan = retry_plan(entry, heads, existing={one.key})
    assert plan == MergePlan((one, MergeOutput(
        "logs/d/events+3+000000000030+000000000039.ndjson.gz", (two.parts[1],))))
    heads[two.parts[1]] = None
    assert retry_plan(entry, heads, existing=set()) == MergePlan((MergeOutput(
        "logs/d/events+3+000000000000+000000000009.ndjson.gz", (one.parts[0],)),))
    heads[one.parts[0]] = None
    assert retry_plan(entry, heads, existing=set()) is None
