"""Hourly publication against the local S3 server: a worker over a multi-hour run writes one
object per (partition, hour), every event once, readable by DuckDB as it is."""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from tests.integration.test_s3_sink import _duckdb_on_the_bucket
from tests.support.hourly import (
    events_over_hours,
    partition_and_hour,
    produce,
    read_objects,
    wait_for_merges,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _rows(key: str, body: bytes) -> list[dict]:
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(body)).to_pylist()
    text = gzip.decompress(body)
    if key.endswith(".csv.gz"):
        return list(csv.DictReader(io.StringIO(text.decode())))
    return [orjson.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(("file_format", "target_bytes"), [("ndjson", 256 * 1024 * 1024),
                                                           ("csv", 1024),
                                                           ("parquet", 256 * 1024 * 1024)])
async def test_hourly_mode_merges_each_closed_hour_of_a_partition(
    s3_settings: Settings, tmp_path: Path, file_format: str, target_bytes: int
) -> None:
    settings = s3_settings.model_copy(update={
        "s3_publish": "hourly", "s3_format": file_format, "s3_merge_target_bytes": target_bytes,
        # Small batches and parts: many parts per hour, so the merge has something to do.
        "batch_max_records": 20,
        "s3_part_max_events": 40,
    })
    await ensure_topics(settings)
    values, per_hour = events_over_hours(3000)
    await produce(settings, values)
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
        await wait_for_no_lag(settings, worker)
        await wait_for_merges(settings)
    finally:
        code = worker.stop()
    assert code == 0, worker.log()[-3000:]

    objects = await read_objects(settings, "logs/year=")
    rows = {key: _rows(key, body) for key, body in objects.items()}
    ids = Counter(row["event_id"] for key_rows in rows.values() for row in key_rows)
    assert len(ids) == 3000 and set(ids.values()) == {1}
    per_partition_hour = Counter(partition_and_hour(key) for key in objects)
    assert {hour for _, hour in per_partition_hour} == {"hour=09", "hour=10", "hour=11"}
    merged = worker.log().count("merged ")
    assert merged == len(objects)
    if file_format in ("ndjson", "parquet"):
        # One object per (partition, hour), each made of several parts, below the target.
        assert set(per_partition_hour.values()) == {1}, per_partition_hour
        assert all(len(body) < target_bytes for body in objects.values())
        assert worker.log().count("merged 1 hour parts") < len(objects)
    else:
        # A small target: a few objects per (partition, hour), each of whole parts and with the
        # header once (DictReader would read a repeated header as a row).
        assert max(per_partition_hour.values()) > 1
        assert all(row["type"] == "track" for key_rows in rows.values() for row in key_rows)
        for key, body in objects.items():
            assert gzip.decompress(body).count(b"event_id,") == 1, key
            parts = int(worker.log().split(f"into {key}")[0].rsplit("merged ", 1)[1].split()[0])
            assert len(body) <= target_bytes or parts == 1, key

    # The query layout as Athena and DuckDB read it, straight from the bucket.
    reader, extension = {"ndjson": ("read_json_auto", "ndjson.gz"),
                         "csv": ("read_csv_auto", "csv.gz"),
                         "parquet": ("read_parquet", "parquet")}[file_format]
    connection = _duckdb_on_the_bucket(settings)
    counted = connection.sql(
        f"select hour, count(*), count(distinct event_id) from {reader}("
        f"'s3://{settings.s3_bucket}/logs/year=*/*/*/*/*.{extension}', hive_partitioning=true) "
        "group by hour order by hour").fetchall()
    assert {str(hour).zfill(2): (n, d) for hour, n, d in counted} == {
        hour: (n, n) for hour, n in per_hour.items()}
