"""Hourly merges without S3: hour-part keys, the merge plan, and merging gzip and Parquet files."""

from __future__ import annotations

import asyncio
import gzip
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from worker.sinks.s3.hour_parts import DueGroups, HourGroup
from worker.sinks.s3.hourly import (
    HourlyMerger,
    hour_part_key,
    is_hour_part,
    split_hour_part,
    with_hour_parts,
)
from worker.sinks.s3.markers import Marker, MergeOutput, MergePlan, Pending
from worker.sinks.s3.merge import (
    BadPart,
    append_gzip,
    gzip_header,
    merge_parquet,
    merged_as,
    plan_outputs,
)
from worker.sinks.s3.naming import HourSlot, object_key

SLOT = HourSlot(datetime(2026, 11, 20, 9, tzinfo=UTC))
DIRECTORY = "year=2026/month=11/day=20/hour=09/"


def _part(first: int, last: int, prefix: str = "logs/") -> str:
    final = object_key(prefix, DIRECTORY, "events", 3, first, last, "ndjson.gz")
    return hour_part_key(prefix, "events", 3, SLOT, final)


def test_an_hour_part_lives_outside_the_query_layout_and_names_its_hour_and_directory() -> None:
    key = _part(0, 9)
    assert key == ("logs/_sluice/hour-parts/events/3/2026-11-20T09/year=2026/month=11/day=20/"
                   "hour=09/events+3+000000000000+000000000009.ndjson.gz")
    assert is_hour_part("logs/", key)
    assert not is_hour_part("logs/", "logs/" + DIRECTORY + "events+3+0+9.ndjson.gz")
    assert split_hour_part("logs/", key) == ("2026-11-20T09", "logs/" + DIRECTORY)


def test_the_plan_groups_parts_in_offset_order_up_to_the_target_size() -> None:
    parts = [(_part(20, 29), 400), (_part(0, 9), 400), (_part(10, 19), 400), (_part(30, 39), 50)]
    single = plan_outputs("logs/" + DIRECTORY, parts, target_bytes=10_000)
    assert single == (MergeOutput(
        "logs/" + DIRECTORY + "events+3+000000000000+000000000039.ndjson.gz",
        (_part(0, 9), _part(10, 19), _part(20, 29), _part(30, 39))),)
    several = plan_outputs("logs/" + DIRECTORY, parts, target_bytes=800)
    assert [output.key.rsplit("/", 1)[1] for output in several] == [
        "events+3+000000000000+000000000019.ndjson.gz",
        "events+3+000000000020+000000000039.ndjson.gz"]
    # A part above the target is an output of its own.
    assert len(plan_outputs("logs/" + DIRECTORY, parts, target_bytes=10)) == 4


def test_the_marker_keeps_hour_parts_and_the_merge_plan_through_a_flush() -> None:
    plan = MergePlan((MergeOutput("logs/x.ndjson.gz", (_part(0, 9),)),), header="a,b\n")
    marker = Marker(10, None, None, (_part(0, 9), _part(10, 19)), plan)
    body = orjson.loads(marker.body("me"))
    assert body["hour_parts"] == [_part(0, 9), _part(10, 19)]
    assert MergePlan.from_json(body["merge"]) == plan
    moved = marker.moved(20, Pending(30, ["k"], ["s"]))
    assert (moved.hour_parts, moved.merge, moved.next_offset) == (marker.hour_parts, plan, 20)
    # Only hour parts join the list; a key already there is not added twice.
    added = with_hour_parts("logs/", marker, [_part(10, 19), _part(20, 29), "logs/other.gz"])
    assert added.hour_parts == (_part(0, 9), _part(10, 19), _part(20, 29))
    # A marker of parts mode reads and writes as before.
    assert set(orjson.loads(Marker(5).body("me"))) == {"next_offset", "pending", "owner"}


def test_gzip_parts_concatenate_into_one_readable_object_with_one_csv_header(
    tmp_path: Path,
) -> None:
    parts = []
    for number, rows in enumerate([b"1,a\n2,b\n", b"3,c\n"]):
        path = tmp_path / f"part-{number}.csv.gz"
        path.write_bytes(gzip.compress(rows))
        parts.append(path)
    merged = tmp_path / "merged.csv.gz"
    with merged.open("wb") as out:
        out.write(gzip_header("id,name\n"))
        for path in parts:
            append_gzip(out, path)
    assert gzip.decompress(merged.read_bytes()) == b"id,name\n1,a\n2,b\n3,c\n"
    assert gzip_header("id,name\n") == gzip_header("id,name\n")  # the same bytes every time
    assert gzip_header("") == b""


def test_parquet_parts_merge_row_group_by_row_group(tmp_path: Path) -> None:
    schema = pa.schema([("event_id", pa.string()), ("received_at", pa.timestamp("ms", "UTC")),
                        ("status", pa.int32())])
    parts = []
    for number in range(3):
        table = pa.table({
            "event_id": [f"e-{number}-{i}" for i in range(5)],
            "received_at": [datetime(2026, 11, 20, 9, i, tzinfo=UTC) for i in range(5)],
            "status": list(range(5))}, schema=schema)
        path = tmp_path / f"part-{number}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=2)
        parts.append(path)
    merged = tmp_path / "merged.parquet"
    merge_parquet(parts, merged)
    result = pq.ParquetFile(merged)
    assert result.schema_arrow == schema
    assert result.num_row_groups == 9  # each part's row groups, kept as they were
    assert result.metadata.row_group(0).column(0).compression == "ZSTD"
    assert result.read().column("event_id").to_pylist() == [
        f"e-{number}-{i}" for number in range(3) for i in range(5)]


def test_parquet_parts_from_before_a_column_was_added_merge_with_nulls_there(
        tmp_path: Path) -> None:
    # A rolling upgrade within the hour: the old version's parts lack the `headers` column.
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    pq.write_table(pa.table({"event_id": ["e-0"], "status": pa.array([200], pa.int64())}), old)
    pq.write_table(pa.table({"event_id": ["e-1"], "status": pa.array([404], pa.int64()),
                             "headers": ['{"traceparent":"00-1"}']}), new)
    merged = tmp_path / "merged.parquet"
    merge_parquet([old, new], merged)
    assert pq.read_table(merged).to_pylist() == [
        {"event_id": "e-0", "status": 200, "headers": None},
        {"event_id": "e-1", "status": 404, "headers": '{"traceparent":"00-1"}'}]


@pytest.mark.parametrize("codec", ["none", "snappy", "gzip", "zstd", "lz4"])
def test_parquet_parts_of_every_codec_merge(tmp_path: Path, codec: str) -> None:
    # Parquet metadata names codecs as UNCOMPRESSED / LZ4_RAW, which pyarrow's writer calls
    # none / lz4: a merge of such parts failed at every try ("Unsupported compression").
    parts = []
    for number in range(2):
        path = tmp_path / f"part-{number}.parquet"
        pq.write_table(pa.table({"event_id": [f"e-{number}"]}), path, compression=codec)
        parts.append(path)
    merged = tmp_path / "merged.parquet"
    merge_parquet(parts, merged)
    assert pq.read_table(merged).column("event_id").to_pylist() == ["e-0", "e-1"]


class _State:
    """The parts of a sink's partition state the merger reads."""

    def __init__(self, hour_parts: tuple[str, ...], open_slots: dict[str, HourSlot]) -> None:
        self.key = ("events", 3)
        self.marker = Marker(100, hour_parts=hour_parts)
        self.parts = {directory: type("Part", (), {"slot": slot})()
                      for directory, slot in open_slots.items()}


def _merger(header: str = "") -> HourlyMerger:
    return HourlyMerger("logs/", None, None, Path("."),  # type: ignore[arg-type]
                        grace=60.0, quiet=300.0, target_bytes=1 << 20, header=header,
                        lose=print)


def _due(due: DueGroups, state: _State, now: float, now_monotonic: float) -> list[HourGroup]:
    return due.due(state.key, state.marker, state.parts, now, now_monotonic)


def test_an_hour_is_due_once_closed_and_the_partition_moved_on_or_went_quiet() -> None:
    due, end = DueGroups("logs/", grace=60.0, quiet=300.0), SLOT.end_epoch
    later = HourSlot(datetime(2026, 11, 20, 10, tzinfo=UTC))
    nine = (_part(0, 9), _part(10, 19))
    # Open hour (and its grace): never due.
    assert _due(due, _State(nine, {}), end + 59, 0.0) == []
    # Closed, but the partition still fills a part of that hour: waits for it.
    assert _due(due, _State(nine, {DIRECTORY: SLOT}), end + 61, 0.0) == []
    # Closed, a later hour has begun: due at once.
    moved_on = _State(nine, {"year=2026/month=11/day=20/hour=10/": later})
    assert _due(due, moved_on, end + 61, 0.0) == [
        HourGroup("2026-11-20T09", "logs/" + DIRECTORY, "ndjson.gz", "", nine)]
    # Closed and nothing later: due once no part of the hour has come for `quiet` seconds.
    quiet = DueGroups("logs/", grace=60.0, quiet=300.0)
    assert _due(quiet, _State(nine, {}), end + 61, 1000.0) == []
    assert _due(quiet, _State(nine, {}), end + 61, 1299.0) == []
    assert _due(quiet, _State(nine + (_part(20, 29),), {}), end + 61, 1299.0) == []  # a new part
    assert _due(quiet, _State(nine + (_part(20, 29),), {}), end + 61, 1599.0) != []


class _Objects:
    """S3 calls of a merge: one hour part has vanished from the bucket."""

    bucket = "b"

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing
        outer = self

        class Client:
            async def head_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
                if Key in outer.missing:
                    raise ClientError({"Error": {"Code": "404", "Message": "Not Found"},
                                       "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
                return {"ContentLength": 100}

        self.client = Client()

    async def retrying(self, what: str, call: Any, *arguments: Any, **options: Any) -> Any:
        return await call(*arguments)


class _Markers:
    async def write(self, where: str, marker: Marker, etag: str | None, owner: str) -> Marker:
        return marker


async def test_a_missing_hour_part_parks_its_hour_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 404 for an hour part is an answer, not an S3 fault to retry without end under the
    # partition's lock: that hour is parked (logged once), the partition's other hours merge.
    ten = HourSlot(datetime(2026, 11, 20, 10, tzinfo=UTC))
    ten_directory = "year=2026/month=11/day=20/hour=10/"
    ten_part = hour_part_key("logs/", "events", 3, ten, object_key(
        "logs/", ten_directory, "events", 3, 20, 29, "ndjson.gz"))
    nine = (_part(0, 9), _part(10, 19))
    merger = _merger()
    merger.objects = merger.builder.objects = _Objects({nine[1]})  # type: ignore[assignment]
    merger.markers = _Markers()  # type: ignore[assignment]
    state = _State(nine + (ten_part,), {"year=2026/month=11/day=20/hour=11/": HourSlot(
        datetime(2026, 11, 20, 11, tzinfo=UTC))})
    state.lock, state.detached, state.claim = asyncio.Lock(), False, "me/1"  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR):
        plan = await merger._plan_next(state)  # type: ignore[arg-type]
        assert plan is not None and [o.parts for o in plan.outputs] == [(ten_part,)]
        state.marker = replace(state.marker, merge=None)
        assert await merger._plan_next(state) is not None  # hour 10 again (not merged here)
    (parked,) = state.marker.parked
    assert (parked.plan.parts, parked.cause) == (nine, "missing_part")
    assert dict(parked.etags) == {nine[0]: "", nine[1]: None}
    assert state.marker.hour_parts == (*nine, ten_part)  # kept, not planned again
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and nine[1] in errors[0] and "parked" in errors[0], errors


def _part_of(first: int, last: int, extension: str) -> str:
    final = object_key("logs/", DIRECTORY, "events", 3, first, last, extension)
    return hour_part_key("logs/", "events", 3, SLOT, final)


def _merging_state(hour_parts: tuple[str, ...]) -> _State:
    state = _State(hour_parts, {"year=2026/month=11/day=20/hour=11/": HourSlot(
        datetime(2026, 11, 20, 11, tzinfo=UTC))})
    state.lock, state.detached, state.claim = asyncio.Lock(), False, "me/1"  # type: ignore[attr-defined]
    return state


async def test_parts_of_an_hour_whose_format_was_switched_merge_apart() -> None:
    # SLUICE_S3_FORMAT changed from ndjson to parquet within the hour: an object of gzip lines
    # and Parquet row groups would be neither. Each format's parts make objects of their own.
    ndjson = (_part_of(0, 9, "ndjson.gz"), _part_of(10, 19, "ndjson.gz"))
    parquet = (_part_of(20, 29, "parquet"),)
    merger = _merger()
    merger.objects = merger.builder.objects = _Objects(set())  # type: ignore[assignment]
    merger.markers = _Markers()  # type: ignore[assignment]
    state = _merging_state(ndjson + parquet)
    plans = []
    while (plan := await merger._plan_next(state)) is not None:  # type: ignore[arg-type]
        plans.append(plan)
        merged = set(plan.parts)
        state.marker = replace(state.marker, merge=None, hour_parts=tuple(
            key for key in state.marker.hour_parts if key not in merged))
    assert sorted(tuple(sorted(plan.parts)) for plan in plans) == sorted([ndjson, parquet])
    assert all(plan.header == "" for plan in plans)
    assert merged_as(plans[0].outputs[0].key) != merged_as(plans[1].outputs[0].key)


async def test_csv_hour_parts_of_an_earlier_version_wait_while_the_format_is_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Listed without their header row (an earlier version did not record it), theirs is taken
    # to be the configured CSV columns': with another format configured there is none to give
    # the merged object, so they wait (said once) instead of merging headerless.
    merger = _merger()  # the current format: NDJSON (no header)
    merger.objects = merger.builder.objects = _Objects(set())  # type: ignore[assignment]
    merger.markers = _Markers()  # type: ignore[assignment]
    state = _merging_state((_part_of(0, 9, "csv.gz"),))
    with caplog.at_level(logging.ERROR):
        assert await merger._plan_next(state) is None  # type: ignore[arg-type]
        assert await merger._plan_next(state) is None  # type: ignore[arg-type]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "SLUICE_S3_FORMAT=csv" in errors[0], errors


def test_merged_objects_are_stored_as_their_format_stores_its_parts() -> None:
    from worker.sinks.s3.formats.base import CsvFormat, NdjsonFormat
    from worker.sinks.s3.formats.parquet import ParquetFormat

    for form in (NdjsonFormat(1), CsvFormat(["event_id"], 1), ParquetFormat("zstd", 1 << 20)):
        key = _part_of(0, 9, form.extension)
        assert merged_as(key) == (form.content_type, form.content_encoding)


class _Existing(_Objects):
    """S3 calls of a merge where these output keys exist already."""

    def __init__(self, existing: set[str]) -> None:
        super().__init__(set())
        self.existing = existing

    async def exists(self, key: str) -> bool:
        return key in self.existing


async def test_a_plan_an_earlier_version_made_across_formats_is_planned_again_by_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Planned before parts were grouped by format, and not started: dropped and planned again.
    parts = (_part_of(0, 9, "ndjson.gz"), _part_of(10, 19, "parquet"))
    mixed = MergePlan((MergeOutput("logs/" + DIRECTORY + "events+3+000000000000+000000000019"
                                   ".ndjson.gz", parts),))
    merger = _merger()
    merger.markers = _Markers()  # type: ignore[assignment]
    merger.objects = merger.builder.objects = _Existing(set())  # type: ignore[assignment]
    state = _merging_state(parts)
    state.marker = replace(state.marker, merge=mixed)
    assert await merger._usable(state, mixed) is True  # type: ignore[arg-type]
    assert state.marker.merge is None
    # Started already (its output exists, made of both formats): it waits, said once.
    merger.objects = merger.builder.objects = _Existing({mixed.outputs[0].key})  # type: ignore[assignment]
    state.marker = replace(state.marker, merge=mixed)
    with caplog.at_level(logging.ERROR):
        assert await merger._usable(state, mixed) is False  # type: ignore[arg-type]
        assert await merger._usable(state, mixed) is False  # type: ignore[arg-type]
    assert state.marker.merge == mixed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "several formats" in errors[0], errors
    # A plan of one format is used as it is.
    single = MergePlan((MergeOutput("logs/" + DIRECTORY + "events+3+000000000000+000000000009"
                                    ".ndjson.gz", parts[:1]),))
    assert await merger._usable(state, single) is True  # type: ignore[arg-type]


async def test_csv_hour_parts_of_two_column_sets_merge_apart_each_under_its_own_header() -> None:
    # Issue 26 (1): SLUICE_S3_CSV_COLUMNS changed within the hour (a rolling deploy, a new
    # owner with new settings). Each part is listed with the header it was written with, and
    # merges only with parts of the same header, under that header: never the old rows under
    # the new column names, whatever the merging worker has configured.
    old_columns, new_columns = "event_id,type\n", "event_id,user,type\n"
    first = (_part_of(0, 9, "csv.gz"), _part_of(20, 29, "csv.gz"))
    second = (_part_of(10, 19, "csv.gz"), _part_of(30, 39, "csv.gz"))
    marker = Marker(40).with_hour_parts(first[:1], old_columns)
    marker = marker.with_hour_parts(second[:1], new_columns)
    marker = marker.with_hour_parts(first[1:], old_columns)
    marker = marker.with_hour_parts(second[1:], new_columns)
    merger = _merger(header="id,something,else\n")  # what the merging worker is configured with
    merger.objects = merger.builder.objects = _Objects(set())  # type: ignore[assignment]
    merger.markers = _Markers()  # type: ignore[assignment]
    state = _merging_state(())
    state.marker = marker
    plans = []
    while (plan := await merger._plan_next(state)) is not None:  # type: ignore[arg-type]
        plans.append(plan)
        state.marker = replace(state.marker.without_hour_parts(plan.parts), merge=None)
    assert sorted((plan.header, plan.parts) for plan in plans) == sorted(
        [(old_columns, first), (new_columns, second)])
    assert len({output.key for plan in plans for output in plan.outputs}) == 2


def _gzip_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "data"), [
    ("truncated", gzip.compress(b'{"a": 1}\n' * 1000)[:-20]),
    ("cut in the middle of a second member", gzip.compress(b"1\n") + gzip.compress(b"2\n")[:9]),
    ("not gzip", b"event_id,type\n1,track\n"),
    ("empty", b""),
])
def test_a_gzip_part_that_is_not_whole_is_refused_naming_it(
    tmp_path: Path, name: str, data: bytes,
) -> None:
    # Issue 26 (12): concatenated as it was, a truncated member made every reader of the
    # merged object stop there (and its parts were deleted): the merge refuses it instead.
    part = _gzip_file(tmp_path / "part.csv.gz", data)
    with (tmp_path / "merged").open("wb") as out, pytest.raises(BadPart) as refused:
        append_gzip(out, part)
    assert (refused.value.cause, refused.value.path) == ("corrupt_part", part), name


def test_a_whole_gzip_part_of_several_members_is_appended_byte_for_byte(tmp_path: Path) -> None:
    import os

    data = (gzip.compress(os.urandom(9 * 1024 * 1024), compresslevel=1)
            + gzip.compress(b"x\n" * 5_000_000))  # incompressible, then 10 MB from 20 KB
    part = _gzip_file(tmp_path / "part.ndjson.gz", data)
    merged = tmp_path / "merged"
    with merged.open("wb") as out:
        append_gzip(out, part)
    assert merged.read_bytes() == data


def _parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path, compression="zstd")
    return path


def test_parquet_parts_of_versions_with_more_columns_merge_under_all_of_them(
    tmp_path: Path,
) -> None:
    # Issue 26 (12): a version adds a column within an hour (a rolling deploy): the merge
    # failed at every try ("schema does not match") and blocked the partition's later hours.
    older = _parquet(tmp_path / "a.parquet", pa.table({"event_id": ["a"], "type": ["track"]}))
    newer = _parquet(tmp_path / "b.parquet", pa.table({
        "event_id": ["b"], "type": ["page"], "headers": ['{"trace": "1"}']}))
    merged = tmp_path / "merged.parquet"
    merge_parquet([older, newer], merged)
    assert pq.read_table(merged).to_pylist() == [
        {"event_id": "a", "type": "track", "headers": None},
        {"event_id": "b", "type": "page", "headers": '{"trace": "1"}'}]


def test_parquet_parts_that_conflict_or_are_cut_short_are_refused_naming_them(
    tmp_path: Path,
) -> None:
    good = _parquet(tmp_path / "a.parquet", pa.table({"event_id": ["a"], "status": [200]}))
    conflicting = _parquet(tmp_path / "b.parquet", pa.table({"event_id": ["b"],
                                                             "status": ["OK"]}))
    with pytest.raises(BadPart) as refused:
        merge_parquet([good, conflicting], tmp_path / "merged.parquet")
    assert (refused.value.cause, refused.value.path) == ("schema_mismatch", conflicting)
    truncated = tmp_path / "c.parquet"
    truncated.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(BadPart) as refused:
        merge_parquet([good, truncated], tmp_path / "merged.parquet")
    assert (refused.value.cause, refused.value.path) == ("corrupt_part", truncated)
