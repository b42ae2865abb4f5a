"""Commits past transaction markers: where a partition's fetched records end.

A topic written in transactions (`sluice ingest` writes the source topic so) holds a marker
after each transaction's records, an offset of its own that a consumer never receives as a
record; a ``read_committed`` consumer also skips aborted records. Committing one past the last
record read would then leave the group one offset (or more) behind the end for ever: a lag that
never reaches zero, for the metrics, for KEDA's scaling and for anyone waiting for it.

The aiokafka consumer's position after a fetch is past those offsets. ``FetchedEnds`` keeps it
for each partition whose fetched records were all delivered, and ``commit_offset`` commits it
instead of one past the last record once that record, and all before it, are settled: nothing
between the two is a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition
from faust.types import TP


def fetch_position(consumer: Any, tp: TP) -> int | None:
    """An aiokafka consumer's position of `tp` (the next offset it fetches), read from its
    subscription state without a call into the consumer thread; None if it has none."""
    subscription = getattr(getattr(getattr(consumer, "_fetcher", None), "_subscriptions", None),
                           "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    if assignment is None:
        return None
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


class FetchedEnds:
    """Per partition, the position after the last fetch whose records were all delivered."""

    def __init__(self) -> None:
        self._ends: dict[TP, int] = {}

    def __contains__(self, tp: TP) -> bool:
        return tp in self._ends

    def known(self) -> list[TP]:
        return list(self._ends)

    def forget(self, tp: TP | None = None) -> None:
        """A seek or a rewind (of `tp`, or of every partition): positions start again."""
        if tp is None:
            self._ends.clear()
        else:
            self._ends.pop(tp, None)

    def fetching(self, fetched: Mapping[TP, Any], ends: Mapping[TP, int | None]) -> None:
        """A fetch returned records of the partitions in `fetched`: their ends wait for their
        delivery; partitions without records whose records were all delivered move on to
        their new positions (markers can pass without a record)."""
        for tp in fetched:
            self._ends.pop(tp, None)
        for tp, end in ends.items():
            if tp not in fetched and end is not None and tp in self._ends:
                self._ends[tp] = end

    def delivered(self, tp: TP, end: int | None) -> None:
        """Every record of the fetch in `tp` was delivered; `end` is the position after it."""
        if end is not None:
            self._ends[tp] = end

    def commit_offset(self, tp: TP, settled: int | None, read_offset: int | None) -> int | None:
        """What to commit for `tp`: `settled` (one past the last settled record), or the
        fetched end when every record delivered is settled and the end is further."""
        end = self._ends.get(tp)
        if settled is not None and end is not None and end > settled == read_offset:
            return end
        return settled
