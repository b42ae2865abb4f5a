"""A worker commits three hours of events to an Iceberg table in the local PostgreSQL catalog
and S3; DuckDB (its iceberg extension) and pyiceberg read the same table."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.support.hourly import events_over_hours, produce
from tests.support.iceberg import (
    duckdb_connection,
    duckdb_scan,
    iceberg_table,
    pyiceberg_hours,
    pyiceberg_ids,
    snapshot_ranges,
)
from tests.support.ledger import assert_exactly_once
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.sinks.iceberg.naming import COMMITTED_OFFSETS, decode_offsets
from worker.sinks.iceberg.offsets import summary_of

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
async def test_three_hours_of_events_are_one_table_for_duckdb_and_pyiceberg(
    iceberg_settings: Settings, tmp_path: Path
) -> None:
    settings = iceberg_settings
    await ensure_topics(settings)
    values, per_hour = events_over_hours(3000)
    await produce(settings, values)

    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        await wait_for_no_lag(settings, worker, timeout=120)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    produced = {orjson.loads(value)["messageId"] for value in values}
    assert_exactly_once(produced, pyiceberg_ids(settings), "Iceberg (pyiceberg)")
    assert pyiceberg_hours(settings) == per_hour

    connection = duckdb_connection(settings)
    scan = duckdb_scan(settings)
    hours = dict(connection.execute(
        f"SELECT strftime(timestamp AT TIME ZONE 'UTC', '%H'), count(*) FROM {scan} "
        "GROUP BY 1").fetchall())
    assert hours == dict(per_hour)
    distinct, total = connection.execute(
        f"SELECT count(DISTINCT event_id), count(*) FROM {scan}").fetchone()
    assert distinct == total == len(produced)

    # The partitions are the hours: one directory per hour of the event time.
    table = iceberg_table(settings)
    partitions = {row["timestamp_hour"] for row in
                  table.inspect.partitions().column("partition").to_pylist()}
    assert len(partitions) == 3

    # Every snapshot says which offsets it holds; together they cover every record once,
    # and the last one's map is each partition's last offset.
    covered: dict[str, list[tuple[int, int]]] = {}
    for ranges in snapshot_ranges(settings):
        for key, text in ranges.items():
            first, last = map(int, text.split("-"))
            covered.setdefault(key, []).append((first, last))
    for spans in covered.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    last = decode_offsets(summary_of(table.current_snapshot())[COMMITTED_OFFSETS])
    assert sum(offset + 1 for offset in last.values()) == len(values)
    assert {f"sluice.offsets.{t}.{p}" for t, p in last} == set(covered)
