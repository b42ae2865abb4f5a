"""Which partitions of a commit are committed, already in the table, or another owner's."""

from __future__ import annotations

from worker.sinks.iceberg.commits import RetryPolicy, sort_partitions


def test_partitions_sort_by_the_tables_committed_offsets() -> None:
    ranges = {("t", 0): (10, 19), ("t", 1): (10, 19), ("t", 2): (10, 19), ("t", 3): (0, 5)}
    committed = {("t", 0): 9, ("t", 1): 19, ("t", 2): 14}
    fresh, done, overlap = sort_partitions(ranges, committed)
    # partition 3: nothing committed yet; a gap below the range (records without events) is fine
    assert fresh == [("t", 0), ("t", 3)]
    assert done == [("t", 1)]          # our earlier attempt landed, or a new owner's did
    assert overlap == [("t", 2)]       # another owner committed part of it: consume again


def test_backoff_grows_to_its_maximum() -> None:
    policy = RetryPolicy(max_attempts=5, initial=0.5, maximum=2.0)
    assert all(0 <= policy.delay(attempt) <= 2.0 for attempt in range(1, 20))
