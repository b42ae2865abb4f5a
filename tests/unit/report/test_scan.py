import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worker.config import load_settings
from worker.events.parquet_schema import record_batch
from worker.report import scan
from worker.report.archive import NDJSON, PARQUET, ArchiveError, ArchiveObject, Selection
from worker.report.panels import COLUMN_NAMES, NOT_IN_CATALOG
from worker.report.scan import (
    batches,
    connect,
    join_ndjson,
    load_events,
    select_sql,
    source_sql,
)
from worker.report.window import Window

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
WINDOW = Window(HOUR, HOUR.replace(hour=11))

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
# Filed an hour later: outside WINDOW.
LATE = {**DOCUMENTS[2], "event_id": "r9", "received_at": "2026-11-22T11:00:00.000Z"}


def _ndjson(documents: list[dict], last_line_break: bool = True) -> bytes:
    text = b"\n".join(orjson.dumps(document) for document in documents)
    return gzip.compress(text + (b"\n" if last_line_break else b""))


def _parquet(documents: list[dict]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([record_batch(documents)]), sink)
    return sink.getvalue().to_pybytes()


def test_each_statement_reads_one_format_within_the_batch_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scan, "BATCH_BYTES", 20)
    objects = [ArchiveObject(f"a/{n}.ndjson.gz", 10) for n in range(5)] + [
        ArchiveObject("a/x.parquet", 1)]
    assert [[item.key for item in group] for group in batches(objects)] == [
        ["a/0.ndjson.gz", "a/1.ndjson.gz"], ["a/2.ndjson.gz", "a/3.ndjson.gz"],
        ["a/4.ndjson.gz"], ["a/x.parquet"]]


def test_ndjson_and_parquet_objects_give_the_same_columns(tmp_path: Path) -> None:
    ndjson = tmp_path / "part.ndjson.gz"
    ndjson.write_bytes(_ndjson(DOCUMENTS))
    parquet = tmp_path / "part.parquet"
    parquet.write_bytes(_parquet(DOCUMENTS))
    connection = connect()
    for path, extension in ((ndjson, NDJSON), (parquet, PARQUET)):
        cursor = connection.execute(select_sql(source_sql([str(path)], extension),
                                               "received_at"))
        assert tuple(name for name, *_ in cursor.description) == COLUMN_NAMES
        assert cursor.fetchall() == EXPECTED, extension


def test_joined_ndjson_objects_keep_every_document_on_its_own_line(tmp_path: Path) -> None:
    # The first object's last line has no line break: joined as they are, it would run into
    # the next object's first line.
    bodies = [_ndjson(DOCUMENTS[:2], last_line_break=False), _ndjson(DOCUMENTS[2:3]),
              _ndjson(DOCUMENTS[3:], last_line_break=False)]
    joined = join_ndjson(bodies, 2)
    assert len(joined) == 2 and len(join_ndjson(bodies, 8)) == 3
    paths = []
    for index, content in enumerate(joined):
        paths.append(str(tmp_path / f"{index}.ndjson.gz"))
        Path(paths[-1]).write_bytes(content)
    rows = connect().execute(
        select_sql(source_sql(paths, NDJSON), "received_at") + " ORDER BY ts").fetchall()
    assert rows == EXPECTED


def _local_copy(root: Path, objects: dict[str, bytes]) -> Selection:
    for key, body in objects.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
    items = tuple(ArchiveObject(key, len(body)) for key, body in objects.items())
    return Selection(items, 0, len(items))


def test_the_windows_documents_of_every_object_load_once_into_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small batches: several statements, several tables behind ``events``.
    monkeypatch.setattr(scan, "BATCH_BYTES", 1)
    hour = "year=2026/month=11/day=22/hour=10/"
    selection = _local_copy(tmp_path, {
        f"{hour}e+0+1+2.ndjson.gz": _ndjson(DOCUMENTS[:1], last_line_break=False),
        f"{hour}e+0+3+4.ndjson.gz": _ndjson([DOCUMENTS[1], LATE]),
        f"{hour}e+1+1+2.parquet": _parquet(DOCUMENTS[2:3]),
        f"{hour}e+1+3+4.parquet": _parquet(DOCUMENTS[3:]),
    })
    advanced: list[int] = []
    connection = connect()
    loaded = load_events(connection, load_settings(), selection, WINDOW, advanced.append,
                         root=tmp_path)
    assert loaded == 4
    cursor = connection.execute("SELECT * FROM events ORDER BY ts")
    assert tuple(name for name, *_ in cursor.description) == COLUMN_NAMES
    assert cursor.fetchall() == EXPECTED
    assert len(advanced) == 4 and sum(advanced) == selection.bytes


def test_without_objects_events_is_an_empty_table(tmp_path: Path) -> None:
    connection = connect()
    assert load_events(connection, load_settings(), Selection((), 0, 0), WINDOW,
                       root=tmp_path) == 0
    cursor = connection.execute("SELECT * FROM events")
    assert tuple(name for name, *_ in cursor.description) == COLUMN_NAMES


def test_an_object_duckdb_cannot_read_is_named(tmp_path: Path) -> None:
    selection = _local_copy(tmp_path, {"day/broken.ndjson.gz": b"not gzip at all"})
    with pytest.raises(ArchiveError, match="1 objects starting with .*day/broken.ndjson.gz"):
        load_events(connect(), load_settings(), selection, WINDOW, root=tmp_path)


def test_the_files_duckdb_read_are_gone_after_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(scan.tempfile, "tempdir", str(spool))
    selection = _local_copy(tmp_path / "copy", {"a/e.ndjson.gz": _ndjson(DOCUMENTS)})
    load_events(connect(), load_settings(), selection, WINDOW, root=tmp_path / "copy")
    assert list(spool.iterdir()) == []
