"""Table maintenance: compaction of an hour, snapshot expiry, deletes by user id.

pyiceberg has no compaction (Spark's ``rewrite_data_files`` and Trino's ``OPTIMIZE`` do), so
``compact`` reads an hour's rows and overwrites that hour with them in one snapshot: the hour's
many small files (one per source partition and commit) become one or a few. ``delete_user``
deletes a user's rows with pyiceberg's copy-on-write delete (the files holding them are
rewritten without them; no delete files, so every engine reads the result). Every snapshot made
here carries the table's committed offsets forward (``worker.sinks.iceberg.naming``), re-read at
each attempt, so the sink's exactly-once bookkeeping survives them; conflicts with the workers'
appends are retried like theirs.

``expire_snapshots`` removes snapshots older than the age given (the current one always stays);
pyiceberg removes them from the metadata only: data files no snapshot references any more stay in
S3 until an engine's orphan-file cleanup (Spark's ``remove_orphan_files``) removes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.sinks.iceberg.commits import RetryPolicy, _without_pyiceberg_retries
from worker.sinks.iceberg.naming import COMMITTED_OFFSETS, OPERATION, TIME_COLUMN, encode_offsets
from worker.sinks.iceberg.offsets import committed_offsets

log = logging.getLogger(__name__)


def expire_snapshots(table: Any, max_age_hours: float) -> int:
    """Expire snapshots older than `max_age_hours`; how many were expired."""
    table.refresh()
    cutoff = datetime.now(UTC) - timedelta(hours=max_age_hours)
    current = table.metadata.current_snapshot_id
    old = [s.snapshot_id for s in table.metadata.snapshots
           if s.timestamp_ms < cutoff.timestamp() * 1000 and s.snapshot_id != current]
    if not old:
        return 0
    table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)


def hour_bounds(hour: datetime) -> tuple[datetime, datetime]:
    """The hour holding `hour` (UTC), as [start, end)."""
    start = hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def data_files_in(table: Any, start: datetime, end: datetime) -> int:
    """How many data files hold rows of [start, end)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    row_filter = And(GreaterThanOrEqual(TIME_COLUMN, start.isoformat()),
                     LessThan(TIME_COLUMN, end.isoformat()))
    return sum(1 for _ in table.scan(row_filter=row_filter).plan_files())


def compact_hour(table: Any, hour: datetime, policy: RetryPolicy | None = None) -> tuple[int, int]:
    """Rewrite the hour's data files as one (or a few, at the table's target file size).

    Returns (files before, files after)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    start, end = hour_bounds(hour)
    row_filter = And(GreaterThanOrEqual(TIME_COLUMN, start.isoformat()),
                     LessThan(TIME_COLUMN, end.isoformat()))
    before = data_files_in(table, start, end)
    if before <= 1:
        return before, before

    def rewrite(transaction: Any, properties: dict[str, str]) -> None:
        rows = transaction._table.scan(row_filter=row_filter).to_arrow()  # noqa: SLF001
        transaction.overwrite(rows, overwrite_filter=row_filter, snapshot_properties=properties)

    _commit_carrying_offsets(table, rewrite, "compact", policy or RetryPolicy())
    return before, data_files_in(table, start, end)


def delete_user(table: Any, user_id: str, policy: RetryPolicy | None = None) -> int:
    """Delete every row of `user_id` (copy-on-write); how many rows were deleted."""
    from pyiceberg.expressions import EqualTo

    row_filter = EqualTo("user_id", user_id)
    table.refresh()
    count = table.scan(row_filter=row_filter, selected_fields=("event_id",)).to_arrow().num_rows
    if count == 0:
        return 0

    def delete(transaction: Any, properties: dict[str, str]) -> None:
        transaction.delete(row_filter, snapshot_properties=properties)

    _commit_carrying_offsets(table, delete, "delete", policy or RetryPolicy())
    return count


def _commit_carrying_offsets(table: Any, change: Callable[[Any, dict[str, str]], None],
                             operation: str, policy: RetryPolicy) -> None:
    """Apply `change` in a transaction whose snapshot carries the committed offsets forward."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    for attempt in range(1, policy.max_attempts + 1):
        table.refresh()
        properties = {COMMITTED_OFFSETS: encode_offsets(committed_offsets(table)),
                      OPERATION: operation}
        transaction = _without_pyiceberg_retries(table).transaction()
        change(transaction, properties)
        try:
            transaction.commit_transaction()
        except (CommitFailedException, ValidationException) as error:
            log.info("Iceberg %s conflict (attempt %d): %s", operation, attempt, error)
            time.sleep(policy.delay(attempt))
            continue
        table.refresh()
        return
    raise RuntimeError(f"Iceberg {operation}: {policy.max_attempts} conflicts in a row")
