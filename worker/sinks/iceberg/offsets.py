"""The source offsets a table has committed, read from its snapshots' summaries.

The current snapshot's ``sluice.committed-offsets`` holds every partition's last committed offset
(``worker.sinks.iceberg.naming``). A snapshot made by another engine (Spark's
``rewrite_data_files``, Trino's ``OPTIMIZE``) does not carry it, so the walk goes back along the
parents to the newest snapshot that does. If the snapshots that carried it were all expired
meanwhile, nothing is known and the partitions start from the Kafka group's offsets: Sluice's
own compaction, deletes and expiry always carry the map forward, so that only happens when other
engines rewrite the table and expire past Sluice's last commit.
"""

from __future__ import annotations

from typing import Any

from worker.sinks.iceberg.naming import COMMITTED_OFFSETS, PartitionKey, decode_offsets


def summary_of(snapshot: Any) -> dict[str, str]:
    """A snapshot's summary as a plain dict (operation included)."""
    if snapshot is None or snapshot.summary is None:
        return {}
    return {key: str(value) for key, value in snapshot.summary.model_dump().items()}


def committed_offsets(table: Any) -> dict[PartitionKey, int]:
    """Each source partition's last offset committed to the table (as of `table`'s metadata)."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        text = summary_of(snapshot).get(COMMITTED_OFFSETS)
        if text is not None:
            return decode_offsets(text)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return {}
