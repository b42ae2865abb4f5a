"""The Parquet schema covers the document model, and documents convert to it losslessly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.model_documents import HEADERS, every_field_document, sample_documents
from tests.support.paths import REPO_ROOT
from worker.events.decoding import EventKind, InputForm, RawEvent
from worker.events.errors import WrongType
from worker.events.normalize import normalize
from worker.events.parquet_schema import COLUMN_NAMES, SCHEMA, TIMESTAMP, record_batch
from worker.events.records import Event, KafkaPosition, SourceRecord
from worker.sinks.s3.formats.parquet import ParquetFormat
from worker.sinks.s3.naming import HourSlot

RECORD = SourceRecord(None, b"{}", KafkaPosition("events", 3, 17), 1_795_000_000_000)
_sample_documents = sample_documents


def test_every_field_of_every_input_form_has_a_column() -> None:
    fields = {name for document in _sample_documents() for name in document}
    fields |= set(every_field_document())
    assert fields <= COLUMN_NAMES, fields - COLUMN_NAMES


def test_documents_convert_with_typed_columns_and_json_text() -> None:
    document = every_field_document()
    batch = record_batch([document, {"event_id": "bare", "type": "track"}])
    assert batch.schema == SCHEMA
    row, bare = batch.to_pylist()
    assert row["timestamp"] == datetime(2026, 11, 22, 20, 31, 4, 123000, tzinfo=UTC)
    assert row["received_at"] == datetime(2026, 11, 22, 20, 31, 6, tzinfo=UTC)
    assert row["user_id"] == "42" and row["status"] == 200 and row["response_length"] == 12
    assert row["enriched"] is True and row["usage_plan_name"] == "Gold"
    assert orjson.loads(row["traits"]) == {"b": [1, 2]}
    assert orjson.loads(row["context"]) == {"source": {"id": "src"}}
    assert orjson.loads(row["headers"]) == {"traceparent": HEADERS[0][1].decode(),
                                            "x-digest": {"base64": "3q2+7w=="}}
    assert row["kafka"] == {"topic": "events", "partition": 3, "offset": 17, "batch_index": None}
    assert bare["event_id"] == "bare" and bare["timestamp"] is None and bare["kafka"] is None


def test_timestamps_are_utc_milliseconds_that_athena_reads() -> None:
    assert SCHEMA.field("timestamp").type == TIMESTAMP == pa.timestamp("ms", tz="UTC")
    assert {SCHEMA.field(name).type for name in ("status", "response_length")} == {pa.int64()}


def test_integers_beyond_64_bits_are_refused_by_the_normaliser() -> None:
    with pytest.raises(WrongType, match="64-bit"):
        normalize(RawEvent(EventKind.ACCESS_LOG, InputForm.ACCESS_LOG,
                           {"requestId": "r", "status": 2**64 - 1}), RECORD)


def test_a_part_streams_row_groups_to_its_spool_file(tmp_path: Path) -> None:
    documents = _sample_documents(200)
    parquet_format = ParquetFormat("zstd", 64 * 1024)
    part = parquet_format.open_part(
        tmp_path / "events-0-1", "hour=20/", HourSlot.of("2026-11-22T20:00:00.000Z"))
    assert part.path.name == "events-0-1.part.parquet"
    events = [Event(d["event_id"], d, SourceRecord(None, b"", KafkaPosition("events", 0, n)),
                    encoded=orjson.dumps(d)) for n, d in enumerate(documents)]
    before = part.compressed_bytes
    for start in range(0, len(documents), 100):
        batch = events[start:start + 100]
        part.add_many([parquet_format.item(event) for event in batch], batch)
    assert part.path.stat().st_size > 0  # row groups were written while the part filled
    assert part.compressed_bytes > before
    size = part.finish()
    parquet = pq.ParquetFile(part.path)
    assert parquet.metadata.num_row_groups > 1
    assert parquet.schema_arrow == SCHEMA
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    assert table.column("event_id").to_pylist() == [d["event_id"] for d in documents]
    assert (part.first_offset, part.last_offset, size) == (0, len(documents) - 1,
                                                           part.path.stat().st_size)
    part.discard()
    assert not part.path.exists()


def test_a_discarded_part_leaves_no_file(tmp_path: Path) -> None:
    part = ParquetFormat("snappy", 1 << 20).open_part(
        tmp_path / "p", "d/", HourSlot.of("2026-11-22T20:00:00.000Z"))
    documents = _sample_documents(1)
    part.add_many([Event("e", d, RECORD) for d in documents], [])
    part.discard()
    assert list(tmp_path.iterdir()) == []


def _hive_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f"{_quoted(field.name)}:{_hive_type(field.type)}"
                           for field in arrow_type)
        return f"struct<{fields}>"
    return {pa.string(): "string", TIMESTAMP: "timestamp", pa.int64(): "bigint",
            pa.int32(): "int", pa.bool_(): "boolean"}[arrow_type]


def _quoted(name: str) -> str:
    return f"`{name}`" if name in {"type", "timestamp", "partition", "offset"} else name


def test_the_athena_parquet_table_has_the_schemas_columns_and_types() -> None:
    ddl = (REPO_ROOT / "deploy" / "athena"
           / "events_parquet_table.sql").read_text()
    body = ddl.split("CREATE EXTERNAL TABLE IF NOT EXISTS sluice_events_parquet (", 1)[1]
    body = body.split("\n)\nPARTITIONED BY", 1)[0]
    columns = [line.strip().rstrip(",").split(None, 1) for line in body.strip().splitlines()]
    assert [(name, kind.strip()) for name, kind in columns] == [
        (_quoted(field.name), _hive_type(field.type)) for field in SCHEMA]
    assert "STORED AS PARQUET" in ddl
    assert "year=${year}/month=${month}/day=${day}/hour=${hour}/" in ddl
