"""The Iceberg table's upkeep on the local PostgreSQL catalog and S3: a new document-model
column evolves the table at the next commit, an hour's files compact into one, a user's rows
are deleted, old snapshots expire; each carries the committed offsets forward."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from tests.support.iceberg import iceberg_table
from worker.config import Settings
from worker.events.parquet_schema import SCHEMA, record_batch
from worker.sinks.iceberg.client import open_catalog
from worker.sinks.iceberg.commits import PartitionBatch, RetryPolicy, commit
from worker.sinks.iceberg.maintenance import compact_hour, delete_user, expire_snapshots
from worker.sinks.iceberg.naming import table_identifier
from worker.sinks.iceberg.offsets import committed_offsets

pytestmark = pytest.mark.integration

HOUR = datetime(2026, 11, 22, 20, tzinfo=UTC)


def _batch(topic: str, first: int, last: int, user: str = "u1") -> PartitionBatch:
    documents = [{"event_id": f"{topic}-{offset}", "type": "track", "user_id": user,
                  "timestamp": f"2026-11-22T20:{offset % 60:02d}:00.000Z",
                  "kafka": {"topic": topic, "partition": 0, "offset": offset,
                            "batch_index": None}}
                 for offset in range(first, last + 1)]
    return PartitionBatch(first, last, [record_batch(documents)])


async def _bucket(settings: Settings) -> None:
    from worker.sinks.s3.client import preflight

    await preflight(settings)


async def test_a_new_column_of_the_document_model_evolves_the_table_on_the_next_commit(
    iceberg_settings: Settings,
) -> None:
    await _bucket(iceberg_settings)
    catalog = open_catalog(iceberg_settings)
    namespace, name = table_identifier(iceberg_settings.iceberg_table)
    catalog.create_namespace(namespace)
    older = pa.schema([field for field in SCHEMA if field.name != "user_agent"])
    catalog.create_table((namespace, name), schema=older)
    assert "user_agent" not in catalog.load_table((namespace, name)).schema().column_names

    table = catalog.load_table((namespace, name))
    commit(table, {("t", 0): _batch("t", 0, 9)}, RetryPolicy())
    table = iceberg_table(iceberg_settings)
    assert "user_agent" in table.schema().column_names
    assert table.scan().to_arrow().num_rows == 10


async def test_compaction_deletes_and_expiry_keep_the_rows_and_the_committed_offsets(
    iceberg_settings: Settings,
) -> None:
    await _bucket(iceberg_settings)
    table = iceberg_table(iceberg_settings)
    for start in range(0, 50, 10):  # five commits: five files in one hour
        commit(table, {("t", 0): _batch("t", start, start + 9,
                                         user="gone" if start == 20 else "u1")}, RetryPolicy())
    assert committed_offsets(table) == {("t", 0): 49}

    before, after = compact_hour(table, HOUR)
    assert (before, after) == (5, 1)
    assert table.scan().to_arrow().num_rows == 50
    assert committed_offsets(table) == {("t", 0): 49}

    assert delete_user(table, "gone") == 10
    rows = table.scan().to_arrow()
    assert rows.num_rows == 40 and "gone" not in rows.column("user_id").to_pylist()
    assert committed_offsets(table) == {("t", 0): 49}

    snapshots = len(table.snapshots())
    assert expire_snapshots(table, max_age_hours=0) == snapshots - 1
    assert len(table.snapshots()) == 1
    assert table.scan().to_arrow().num_rows == 40
    assert committed_offsets(table) == {("t", 0): 49}

    # A range the table holds already is not committed again.
    report = commit(table, {("t", 0): _batch("t", 40, 49)}, RetryPolicy())
    assert report.done == [("t", 0)] and not report.committed
    assert table.scan().to_arrow().num_rows == 40
