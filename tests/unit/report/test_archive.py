import gzip
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worker.events.parquet_schema import record_batch
from worker.report.archive import (
    NDJSON,
    PARQUET,
    ArchiveObject,
    _select_sql,
    _source_sql,
    chunks,
    directory_span,
    select_objects,
)
from worker.report.panels import COLUMN_NAMES, NOT_IN_CATALOG
from worker.report.window import Window

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
DAY = datetime(2026, 11, 22, tzinfo=UTC)
DAY_MS = int(DAY.timestamp() * 1000)


@pytest.mark.parametrize(("key", "span"), [
    ("logs/year=2026/month=11/day=22/hour=10/events+0+000000000000+000000000009.ndjson.gz",
     (HOUR, HOUR.replace(hour=11))),
    ("year=2026/month=11/day=22/events+0+000000000000+000000000009.parquet",
     (DAY, DAY.replace(day=23))),
    (f"logs/segment-logs/src-1/{DAY_MS}/events+1+000000000000+000000000009.ndjson.gz",
     (DAY, DAY.replace(day=23))),
    ("archive/2026-11-22/events+0+000000000000+000000000009.ndjson.gz",
     (DAY, DAY.replace(day=23))),
    ("by-type/track/events+0+000000000000+000000000009.ndjson.gz", None),
])
def test_an_objects_directory_says_which_time_it_holds(
    key: str, span: tuple[datetime, datetime] | None
) -> None:
    assert directory_span(key) == span


def test_objects_outside_the_window_are_not_read_and_csv_objects_are_counted() -> None:
    listing = [
        ArchiveObject("year=2026/month=11/day=22/hour=09/t+0+0+1.ndjson.gz", 10),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+0+2+3.ndjson.gz", 10),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+1+0+5.parquet", 20),
        ArchiveObject("year=2026/month=11/day=22/hour=10/t+2+0+5.csv.gz", 20),
        ArchiveObject(f"segment-logs/s/{DAY_MS}/t+0+9+9.ndjson.gz", 5),
        ArchiveObject("custom/track/t+0+9+9.ndjson.gz", 5),
        ArchiveObject("year=2026/month=11/day=22/hour=10/notes.txt", 1),
    ]
    selection = select_objects(listing, Window(HOUR, HOUR.replace(hour=11)))
    assert [item.key for item in selection.objects] == [
        listing[1].key, listing[2].key, listing[4].key, listing[5].key]
    assert (selection.skipped_csv, selection.listed, selection.bytes) == (1, 7, 40)


def test_each_statement_reads_one_format_within_the_chunk_limits() -> None:
    objects = [ArchiveObject(f"a/{n}.ndjson.gz", 10 * 1024 * 1024) for n in range(5)] + [
        ArchiveObject("a/x.parquet", 1)]
    groups = chunks(objects)
    assert [[item.key for item in group] for group in groups] == [
        ["a/0.ndjson.gz", "a/1.ndjson.gz"], ["a/2.ndjson.gz", "a/3.ndjson.gz"],
        ["a/4.ndjson.gz"], ["a/x.parquet"]]


DOCUMENTS = [
    {"event_id": "t1", "type": "track", "event": "Signed Up", "user_id": "u1",
     "timestamp": "2026-11-22T10:00:01.000Z", "received_at": "2026-11-22T10:00:02.000Z",
     "context": {"library": {"name": "analytics.js"}}, "properties": {"plan": "pro"},
     "input_format": "segment", "kafka": {"topic": "e", "partition": 3, "offset": 7}},
    {"event_id": "p1", "type": "page", "anonymous_id": "a1", "name": "Pricing",
     "timestamp": "2026-11-22T10:05:00.000Z", "received_at": "2026-11-22T10:05:00.500Z",
     "properties": {"path": "/pricing"}, "source_id": "web", "input_format": "segment",
     "kafka": {"topic": "e", "partition": 3, "offset": 8}},
    {"event_id": "r1", "type": "access_log", "timestamp": "2026-11-22T10:06:00.000Z",
     "received_at": "2026-11-22T10:06:00.100Z", "http_method": "GET",
     "resource_path": "/v1/orders/{id}", "status": 503, "response_length": 2048,
     "api_key_id": "key-acme", "customer_id": "cust-acme", "customer_name": "Acme Corp",
     "usage_plan_id": "plan-gold", "usage_plan_name": "Gold", "enriched": True,
     "source_id": "api1", "input_format": "access_log",
     "kafka": {"topic": "e", "partition": 0, "offset": 1}},
    {"event_id": "r2", "type": "access_log", "timestamp": "2026-11-22T10:07:00.000Z",
     "received_at": "2026-11-22T10:07:00.100Z", "http_method": "POST", "resource_path": "/v1/x",
     "status": 201, "response_length": 10, "api_key_id": "key-who", "enriched": False,
     "source_id": "api1", "input_format": "access_log",
     "kafka": {"topic": "e", "partition": 0, "offset": 2}},
]
EXPECTED = [
    (datetime(2026, 11, 22, 10, 0, 2, tzinfo=UTC), "track", "Signed Up", "u1", None,
     "analytics.js", None, None, None, None, None, None, None, None),
    (datetime(2026, 11, 22, 10, 5, 0, 500000, tzinfo=UTC), "page", None, "a1", "/pricing", "web",
     None, None, None, None, None, None, None, None),
    (datetime(2026, 11, 22, 10, 6, 0, 100000, tzinfo=UTC), "access_log", None, None, None, None,
     "Acme Corp", "Gold", "key-acme", True, "GET /v1/orders/{id}", 503, "5xx", 2048),
    (datetime(2026, 11, 22, 10, 7, 0, 100000, tzinfo=UTC), "access_log", None, None, None, None,
     NOT_IN_CATALOG, NOT_IN_CATALOG, "key-who", False, "POST /v1/x", 201, "2xx", 10),
]


def test_ndjson_and_parquet_objects_give_the_same_columns(tmp_path: Path) -> None:
    ndjson = tmp_path / "part.ndjson.gz"
    ndjson.write_bytes(gzip.compress(b"\n".join(orjson.dumps(d) for d in DOCUMENTS) + b"\n"))
    parquet = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_batches([record_batch(DOCUMENTS)]), parquet)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for path, extension in ((ndjson, NDJSON), (parquet, PARQUET)):
        cursor = connection.execute(_select_sql(_source_sql([str(path)], extension),
                                                "received_at"))
        assert tuple(name for name, *_ in cursor.description) == COLUMN_NAMES
        assert cursor.fetchall() == EXPECTED, extension
