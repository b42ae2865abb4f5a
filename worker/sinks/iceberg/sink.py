"""The Iceberg sink: events appended to one Iceberg table, exactly once.

What it promises
----------------
* **One table.** Every event becomes a row of SLUICE_ICEBERG_TABLE (created if missing: the
  document model's columns, partitioned by ``hour(timestamp)`` or ``day(timestamp)``), committed
  through the catalog of SLUICE_ICEBERG_CATALOG (SQL on PostgreSQL, REST or Glue), so Athena,
  Trino, Spark, DuckDB and pyiceberg read one table (``worker.sinks.iceberg.client``).
* **Cadence and file size.** Events wait for the next commit, every
  SLUICE_ICEBERG_COMMIT_INTERVAL seconds (300), or earlier once SLUICE_ICEBERG_MAX_BUFFERED_EVENTS
  are held, and on a rebalance or shutdown. A commit writes one Parquet data file per (source
  partition, hour) and one snapshot for all of them: 12 files per partition and hour at the
  default interval, which ``sluice iceberg compact`` rewrites into one.
* **Exactly once.** Each snapshot's summary records the offset range of every source partition
  it covers and the table's committed offsets of all partitions (``naming``); a commit whose
  range the table already holds is not made again, and events of records at or below the
  table's committed offset of their partition (read when the partition is assigned) are
  acknowledged without being written. Records are acknowledged only after the catalog accepted
  the snapshot, so Kafka's committed offsets trail the table and a crash at any step leaves
  either the records for the next owner or their rows in the table, never both
  (``commits``).
* **Concurrent workers.** Each worker commits its own partitions; a conflicting commit is
  retried with backoff after reading the table's offsets again (pyiceberg's blind retry is off),
  up to SLUICE_ICEBERG_COMMIT_MAX_ATTEMPTS, after which its partitions are reported lost and
  consumed again.
* **Failures.** Catalog or S3 errors are retried with backoff without limit: nothing is
  acknowledged meanwhile, consumption pauses, and the sink is unready with the error.
* **Maintenance.** Snapshots older than SLUICE_ICEBERG_SNAPSHOT_MAX_AGE_HOURS are expired once
  an hour (``maintenance``); compaction and deletes are ``sluice iceberg`` commands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.config import Settings
from worker.events.records import Event
from worker.sinks.base import PartitionKey, Sink, SinkOutcomes
from worker.sinks.iceberg.client import load_table, open_catalog
from worker.sinks.iceberg.offsets import committed_offsets

# pyarrow and pyiceberg are imported when the sink starts, not with the module: a worker
# without this sink never loads them (tests/unit/sinks/elasticsearch/test_sink.py).

log = logging.getLogger(__name__)

NAME = "iceberg"
_EXPIRY_EVERY = 3600.0


@dataclass
class _Buffer:
    """A source partition's events waiting for the next commit."""

    events: list[Event] = field(default_factory=list)


class IcebergSink(Sink):
    """Commits events to an Iceberg table; see the module docstring for what it promises."""

    name = NAME

    def __init__(self, outcomes: SinkOutcomes, settings: Settings) -> None:
        from worker.sinks.iceberg.commits import RetryPolicy

        super().__init__(outcomes)
        self.settings = settings
        self.policy = RetryPolicy(settings.iceberg_commit_max_attempts,
                                  settings.iceberg_retry_initial, settings.iceberg_retry_max)
        self._table: Any = None
        self._owned: set[PartitionKey] = set()
        # The table's last committed offset per owned partition, read once per assignment.
        self._committed: dict[PartitionKey, int] = {}
        self._buffers: dict[PartitionKey, _Buffer] = {}
        self._buffered = 0
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._problem: str | None = None
        self._last_expiry = time.monotonic()
        self.commits = 0
        self.conflicts = 0

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._table = await asyncio.to_thread(self._open_table)
        self._ticker = asyncio.create_task(self._commit_periodically(), name="iceberg-commits")

    def _open_table(self) -> Any:
        return load_table(open_catalog(self.settings), self.settings)

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()

    async def check(self) -> str | None:
        return self._problem

    # --- ownership ------------------------------------------------------------------------

    def assign(self, partitions: Collection[PartitionKey]) -> None:
        for partition in partitions:
            self._owned.add(partition)
            # Another worker may have committed it since we last owned it: read it again.
            self._committed.pop(partition, None)

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        for partition in partitions:
            self._owned.discard(partition)
            self._committed.pop(partition, None)
            buffer = self._buffers.pop(partition, None)
            if buffer is not None:
                self._buffered -= len(buffer.events)

    # --- the contract ---------------------------------------------------------------------

    async def write(self, events: Sequence[Event]) -> None:
        already: list[Event] = []
        for event in events:
            position = event.position
            partition = (position.topic, position.partition)
            if event.cancelled or partition not in self._owned:
                continue
            if partition not in self._committed:
                await self._read_committed(partition)
            if position.offset <= self._committed.get(partition, -1):
                already.append(event)  # its record's rows are in the table already
                continue
            self._buffers.setdefault(partition, _Buffer()).events.append(event)
            self._buffered += 1
        if already:
            self.outcomes.delivered(self.name, already)
        if self._buffered >= self.settings.iceberg_max_buffered_events:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            taken, self._buffers, self._buffered = self._buffers, {}, 0
            pending = {p: [e for e in b.events if not e.cancelled] for p, b in taken.items()
                       if p in self._owned}
            pending = {p: events for p, events in pending.items() if events}
            if pending:
                await self._commit(pending)

    # --- commits --------------------------------------------------------------------------

    async def _read_committed(self, partition: PartitionKey) -> None:
        offsets = await self._with_retries(lambda: self._refreshed_offsets(), "read offsets")
        for key in self._owned:
            self._committed.setdefault(key, offsets.get(key, -1))
        self._committed.setdefault(partition, offsets.get(partition, -1))

    def _refreshed_offsets(self) -> dict[PartitionKey, int]:
        self._table.refresh()
        return committed_offsets(self._table)

    async def _commit(self, pending: dict[PartitionKey, list[Event]]) -> None:
        from worker.events.parquet_schema import record_batch
        from worker.sinks.iceberg.commits import CommitGaveUp, PartitionBatch, commit

        batches = {
            partition: PartitionBatch(
                first=min(e.position.offset for e in events),
                last=max(e.position.offset for e in events),
                batches=[record_batch([e.document for e in events])],
            )
            for partition, events in pending.items()
        }
        try:
            report = await self._with_retries(
                lambda: commit(self._table, batches, self.policy), "commit")
        except CommitGaveUp as error:
            for partition in pending:
                if partition in self._owned:
                    self.outcomes.lost(self.name, partition, f"Iceberg commit: {error}")
            return
        self.commits += 1 if report.committed else 0
        self.conflicts += report.conflicts
        for partition in (*report.committed, *report.done):
            if partition not in self._owned:
                continue  # revoked meanwhile: the next owner finds the rows by the offsets
            self._committed[partition] = max(self._committed.get(partition, -1),
                                             batches[partition].last)
            self.outcomes.delivered(self.name, pending[partition])
        for partition in report.overlap:
            if partition in self._owned:
                self._committed.pop(partition, None)
                self.outcomes.lost(self.name, partition,
                                   "another worker committed part of this partition's range")
        if report.committed:
            log.info("Iceberg commit: %d partitions, %d files, %d attempts, snapshot %s",
                     len(report.committed), report.files, report.attempts, report.snapshot_id)

    async def _with_retries(self, call: Any, what: str) -> Any:
        """Run a blocking catalog call in a thread; retry errors (not conflicts) forever."""
        from worker.sinks.iceberg.commits import CommitGaveUp

        delay = self.settings.iceberg_retry_initial
        while True:
            try:
                result = await asyncio.to_thread(call)
            except CommitGaveUp:
                raise
            except Exception as error:  # noqa: BLE001 (catalog, S3, driver: retried alike)
                self._problem = f"Iceberg {what} failing: {type(error).__name__}: {error}"
                log.warning("%s; retrying in %.1fs", self._problem, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.iceberg_retry_max)
                continue
            self._problem = None
            return result

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.iceberg_commit_interval)
            try:
                await self.flush()
                await self._expire_if_due()
            except Exception:  # noqa: BLE001 (keep the ticker alive; flush retries on its own)
                log.exception("Iceberg commit loop")

    async def _expire_if_due(self) -> None:
        if not self.settings.iceberg_expire_snapshots:
            return
        if time.monotonic() - self._last_expiry < _EXPIRY_EVERY:
            return
        self._last_expiry = time.monotonic()
        from worker.sinks.iceberg.maintenance import expire_snapshots

        try:
            expired = await asyncio.to_thread(
                expire_snapshots, self._table, self.settings.iceberg_snapshot_max_age_hours)
            if expired:
                log.info("Iceberg: expired %d snapshots", expired)
        except Exception as error:  # noqa: BLE001 (another worker expiring at once: next hour)
            log.warning("Iceberg snapshot expiry failed: %s", error)
