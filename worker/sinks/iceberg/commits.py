"""Data files written and committed with the offsets they cover: the sink's commit point.

One commit takes every buffered source partition's events (``PartitionBatch``: the records'
offset range and their rows), writes their Parquet data files (one per partition and hour),
then commits them in one snapshot whose summary holds each range and the whole table's committed
offsets (``worker.sinks.iceberg.naming``). Nothing is acknowledged before the catalog has
accepted the snapshot, so Kafka offsets always trail the table.

Each attempt first reads the table's committed offsets (``worker.sinks.iceberg.offsets``) and
sorts the partitions:

* ``fresh``: the table's last offset lies below the range: committed now;
* ``done``: the table already holds the whole range (our own earlier attempt whose answer was
  lost, or a new owner that consumed the records again): delivered, not committed twice;
* ``overlap``: the table holds part of it (another worker owns the partition now): lost, so the
  pipeline consumes the partition again from the committed offset.

The commit asserts that the table's head is still the snapshot the offsets were read from; on a
conflict (another worker committed meanwhile) the attempt starts again from reading the
offsets, with exponential backoff and jitter. pyiceberg 0.12's own retry
(``commit.retry.num-retries``) is switched off for these commits: it re-applies the same
snapshot on top of the new head without reading the offsets again, which would let a former
owner commit records its successor has committed already.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from worker.events.parquet_schema import SCHEMA
from worker.sinks.iceberg.client import evolve
from worker.sinks.iceberg.naming import PartitionKey, summary_properties
from worker.sinks.iceberg.offsets import committed_offsets

log = logging.getLogger(__name__)

# Fault injection for the tests (tests/e2e/test_iceberg_kills.py): the worker SIGKILLs itself
# at the named step of its first commit: `iceberg-files-written` (data files in S3, nothing
# else), `iceberg-commit-sent` (manifests written, the catalog about to be asked),
# `iceberg-commit-acknowledged` (the catalog accepted the snapshot, nothing acknowledged yet).
KILL_AT_VARIABLE = "_SLUICE_KILL_AT"


def kill_point(step: str) -> None:
    """SIGKILL this process at `step` when the tests ask for it."""
    if os.environ.get(KILL_AT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


# Iceberg stores timestamps in microseconds; the document model's Arrow columns are in
# milliseconds (what Athena reads from plain Parquet): cast on the way into the table.
WRITE_SCHEMA = pa.schema([
    f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
    for f in SCHEMA
])


@dataclass
class PartitionBatch:
    """A source partition's events for the next commit: its offset range and its rows."""

    first: int
    last: int
    batches: list[pa.RecordBatch] = field(default_factory=list)

    def rows(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=SCHEMA).cast(WRITE_SCHEMA)


@dataclass
class CommitReport:
    """What became of each partition of a commit."""

    committed: list[PartitionKey] = field(default_factory=list)
    done: list[PartitionKey] = field(default_factory=list)
    overlap: list[PartitionKey] = field(default_factory=list)
    attempts: int = 0
    conflicts: int = 0
    files: int = 0
    snapshot_id: int | None = None


class CommitGaveUp(Exception):
    """The commit conflicted SLUICE_ICEBERG_COMMIT_MAX_ATTEMPTS times in a row."""


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and backoff of conflicting commits."""

    max_attempts: int = 20
    initial: float = 0.2
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter after the `attempt`-th conflict (1-based)."""
        return random.uniform(0, min(self.maximum, self.initial * 2 ** (attempt - 1)))  # noqa: S311


def sort_partitions(
    ranges: Mapping[PartitionKey, tuple[int, int]], committed: Mapping[PartitionKey, int]
) -> tuple[list[PartitionKey], list[PartitionKey], list[PartitionKey]]:
    """(fresh, done, overlap) partitions given the table's committed offsets."""
    fresh, done, overlap = [], [], []
    for partition, (first, last) in sorted(ranges.items()):
        table_last = committed.get(partition, -1)
        if table_last < first:
            fresh.append(partition)
        elif table_last >= last:
            done.append(partition)
        else:
            overlap.append(partition)
    return fresh, done, overlap


def write_data_files(table: Any, batches: Mapping[PartitionKey, PartitionBatch]) -> dict[
        PartitionKey, list[Any]]:
    """Each partition's rows as Parquet data files of the table (one per hour or day)."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    files: dict[PartitionKey, list[Any]] = {}
    for partition, batch in batches.items():
        files[partition] = list(_dataframe_to_data_files(
            table_metadata=table.metadata, df=batch.rows(), io=table.io,
            write_uuid=uuid.uuid4()))
    return files


def commit(table: Any, batches: Mapping[PartitionKey, PartitionBatch], policy: RetryPolicy,
           operation: str = "append") -> CommitReport:
    """Write the batches' data files and commit them exactly once (blocking; see the module)."""
    from pyiceberg.exceptions import CommitFailedException

    report = CommitReport()
    table.refresh()
    evolve(table)
    files = write_data_files(table, batches)
    kill_point("iceberg-files-written")
    ranges = {p: (b.first, b.last) for p, b in batches.items()}
    for attempt in range(1, policy.max_attempts + 1):
        report.attempts = attempt
        table.refresh()
        committed = committed_offsets(table)
        fresh, report.done, report.overlap = sort_partitions(ranges, committed)
        if not fresh:
            break
        properties = summary_properties({p: ranges[p] for p in fresh}, committed, operation)
        view = _without_pyiceberg_retries(table)
        transaction = view.transaction()
        with transaction.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for partition in fresh:
                for data_file in files[partition]:
                    append.append_data_file(data_file)
        try:
            transaction.commit_transaction()
        except CommitFailedException as error:
            report.conflicts += 1
            log.info("Iceberg commit conflict (attempt %d): %s", attempt, error)
            time.sleep(policy.delay(attempt))
            continue
        kill_point("iceberg-commit-acknowledged")
        report.committed = fresh
        report.files = sum(len(files[p]) for p in fresh)
        report.snapshot_id = view.metadata.current_snapshot_id
        table.refresh()
        break
    else:
        raise CommitGaveUp(f"{report.conflicts} commit conflicts in a row "
                           "(SLUICE_ICEBERG_COMMIT_MAX_ATTEMPTS)")
    _remove_unused(table, [f for p in (*report.done, *report.overlap) for f in files[p]])
    return report


def _without_pyiceberg_retries(table: Any) -> Any:
    """The table as a Table whose transactions do not retry on their own (see the module).

    pyiceberg reads `commit.retry.num-retries` from the metadata it holds; the catalog applies
    our updates to its own current metadata, so the override never reaches the table."""
    from pyiceberg.table import Table

    class _Table(Table):
        def _do_commit(self, updates: Any, requirements: Any) -> None:
            kill_point("iceberg-commit-sent")
            super()._do_commit(updates, requirements)

    properties = {**table.metadata.properties, "commit.retry.num-retries": "0"}
    metadata = table.metadata.model_copy(update={"properties": properties})
    return _Table(identifier=table.name(), metadata=metadata,
                  metadata_location=table.metadata_location, io=table.io, catalog=table.catalog)


def _remove_unused(table: Any, data_files: list[Any]) -> None:
    """Delete data files that no snapshot references (a range the table already had)."""
    for data_file in data_files:
        try:
            table.io.delete(data_file.file_path)
        except Exception as error:  # noqa: BLE001 (an orphan file is harmless: say so, go on)
            log.warning("could not delete unused data file %s: %s", data_file.file_path, error)
