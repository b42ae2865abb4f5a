"""Faust consumption in batches: each fetched batch reaches the pipeline as one unit.

Faust delivers every record on its own: ``Consumer._drain_messages`` awaits
``wait_first(callback(message), suspend_flow.wait())`` per record, then the conductor, a queue, a
stream and a per-message ack follow (about 100 µs a record). ``BatchConsumer`` keeps everything
else Faust does (the app and worker lifecycle, the consumer group and its rebalance callbacks,
the consumer thread, the commit timer) and replaces only that path:

- its drain loop takes each batch that ``_wait_next_records`` fetched in the consumer thread and
  hands it, per partition, to a *route* (``DirectRoute``: await a handler; ``AgentRoute`` in
  ``worker.kafka.faust_batch_agent``: one Faust event per batch to an agent);
- commits come from ``committable(tp)`` (one past the last settled record of the partition)
  instead of Faust's per-message acks: the commit timer commits what the pipeline settled, and
  past the transaction markers that follow it (``worker.kafka.fetched_ends``);
- ``rewind(tp, offset)`` makes a partition deliver its records from ``offset`` again.

Faust's rules are kept, record for record:

- the read-offset rule: records below a partition's read offset are dropped. A seek (Faust's
  ``perform_seek`` after a rebalance, or ``rewind``) sets the read offset; a fetch that was in
  flight during a seek is dropped and the seek done again after it, so its records are read
  again from the new position (never dropped *and* skipped);
- flow suspension: nothing is delivered while ``flow_active`` is false (a rebalance); a batch
  fetched then makes the consumer seek back to the committed offsets, as Faust does, and a
  handler still running when the flow is suspended is cancelled (``wait_first``), as Faust's
  per-message callback is; a cancelled batch counts as not delivered;
- the consumer generation: delivery of a fetched batch stops when the generation changes;
- only partitions that are assigned and not paused are delivered;
- fairness: at most ``max_records_per_partition`` records per handler call, partitions taken in
  turn, so one partition's large fetch does not hold the others back.

Topics that are not batched (none in Sluice today) still go through Faust's per-message path
and per-message acks, so an agent on another topic or a table keeps working.

Every Faust and aiokafka internal used here is pinned by
``tests/unit/kafka/test_faust_contract.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import monotonic
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service

from worker.kafka.fetched_ends import FetchedEnds, fetch_position
from worker.kafka.record_batches import (
    BatchesNotAttached,
    BatchRoute,
    RecordBatch,
    source_records,
)

# Fairness cap: records handed over per partition in one handler call.
DEFAULT_MAX_RECORDS_PER_PARTITION = 500

# The shortest time between two commits made early because every record was settled.
MIN_COMMIT_SPACING = 0.1
# How long one fetch waits for records, as in Faust's drain loop.
FETCH_TIMEOUT_SECONDS = 1.0

Committable = Callable[[TP], int | None]


def _kill_point_after_commit() -> None:
    """Fault injection for the tests (tests/e2e/test_iceberg_kills.py): SIGKILL this worker
    right after its first commit of offsets when `_SLUICE_KILL_AT=offsets-committed`."""
    if os.environ.get("_SLUICE_KILL_AT") == "offsets-committed":
        os.kill(os.getpid(), signal.SIGKILL)


class BatchConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, delivering batches to a route and committing ``committable``.

    Combine it with another consumer subclass by listing it first
    (``class C(BatchConsumer, RebalanceAwareConsumer)``); call ``attach`` before the app starts.
    """

    max_records_per_partition: int = DEFAULT_MAX_RECORDS_PER_PARTITION
    _route: BatchRoute | None = None
    _committable: Committable | None = None
    _batch_topics: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bumped by every seek to the committed offsets / by every rewind of a partition: a
        # batch fetched under an older stamp is stale (see ``is_current``).
        self._seek_generation = 0
        self._rewinds: dict[TP, int] = {}
        self._pending_rewinds: dict[TP, int] = {}
        self._fetched_ends = FetchedEnds()

    def attach(
        self,
        topics: Iterable[str],
        route: BatchRoute,
        committable: Committable,
        *,
        max_records_per_partition: int = DEFAULT_MAX_RECORDS_PER_PARTITION,
        all_settled: asyncio.Event | None = None,
    ) -> None:
        """Deliver the records of ``topics`` to ``route`` in batches and commit ``committable``.

        ``committable(tp)`` returns the next offset to commit for a partition (one past its last
        settled record) or None while nothing new is settled; the commit timer calls it.
        ``all_settled``, if given, is set whenever every record consumed has been settled: the
        commit loop then commits at once instead of at its next tick (see ``_commit_handler``).
        """
        if max_records_per_partition < 1:
            raise ValueError("max_records_per_partition must be at least 1")
        self._batch_topics = frozenset(topics)
        self._route = route
        self._committable = committable
        self._all_settled = all_settled
        self.max_records_per_partition = max_records_per_partition

    # -- seeking --------------------------------------------------------------------------

    def stamp(self, tp: TP) -> tuple[int, int]:
        """The seek stamp of a partition now: changes with every seek that affects it."""
        return self._seek_generation, self._rewinds.get(tp, 0)

    def is_current(self, batch: RecordBatch) -> bool:
        """False when a seek or rewind since the batch was fetched makes it stale."""
        return batch.stamp == self.stamp(batch.tp)

    async def rewind(self, tp: TP, offset: int) -> None:
        """Deliver the partition's records from ``offset`` on again.

        Takes effect at once for what is already fetched: the rest of the partition's records
        in hand are dropped, undelivered, and Faust's read offset is set to ``offset``. The
        drain loop seeks the aiokafka consumer between two fetches (``_apply_rewinds``), never
        while one is in flight: a fetch that returns after the seek could hold records of the
        new position, which could then be neither delivered nor fetched again.
        """
        self._rewinds[tp] = self._rewinds.get(tp, 0) + 1
        self._pending_rewinds[tp] = offset
        self._fetched_ends.forget(tp)
        # As Faust's seek(): no read offset (None) for offset 0.
        self._read_offset[tp] = offset if offset else None

    async def _apply_rewinds(self) -> set[TP]:
        """Seek the partitions rewound since the last fetch; returns them."""
        if not self._pending_rewinds:
            return set()
        requested, self._pending_rewinds = self._pending_rewinds, {}
        # A partition revoked since its rewind is not ours to seek (aiokafka would raise): its
        # next owner starts from the committed offset anyway.
        assigned = self.assignment()
        pending = {tp: offset for tp, offset in requested.items() if tp in assigned}
        if pending:
            try:
                await self.seek_wait(pending)
            except IllegalStateError as exc:  # revoked between the check and the seek
                self.log.info("rewind skipped for partitions no longer assigned: %r", exc)
            for tp, offset in pending.items():
                self._read_offset[tp] = offset if offset else None
        return set(requested)

    async def perform_seek(self) -> None:
        """Faust's seek of every partition to its committed offset; earlier batches go stale."""
        self._seek_generation += 1
        self._fetched_ends.forget()
        await super().perform_seek()

    # -- commits --------------------------------------------------------------------------

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        """Faust's partitions with acked messages, plus every assigned batched partition."""
        tps = set(super()._filter_tps_with_pending_acks(topics))
        if self._batch_topics:
            for tp in self.assignment():
                if tp.topic in self._batch_topics and (
                    topics is None or tp in topics or tp.topic in topics
                ):
                    tps.add(tp)
        return iter(tps)

    @Service.task
    async def _commit_handler(self) -> None:
        """Faust's commit timer (every ``commit_interval``), and a commit as soon as every
        record consumed is settled.

        Under steady load records are always in flight and commits come from the timer, as in
        Faust. When the stream pauses or ends, the last flush (an S3 part, a bulk request) would
        otherwise wait up to a whole interval to be committed: a worker stopped or killed
        meanwhile makes its successor consume those records again. Early commits are spaced at
        least ``MIN_COMMIT_SPACING`` apart, so a trickle of records cannot turn into a commit
        storm.
        """
        interval = self.commit_interval
        while not self.should_stop:
            await self._wait_for_commit_due(interval)
            if self.should_stop:
                break
            if self._all_settled is not None:
                # Cleared before the commit: whatever settles during it sets it again.
                self._all_settled.clear()
            if await self.commit():
                _kill_point_after_commit()
            await self.sleep(min(MIN_COMMIT_SPACING, interval))

    async def _wait_for_commit_due(self, interval: float) -> None:
        """Return after ``interval`` seconds, or earlier once everything consumed settled."""
        if self._all_settled is None:
            await self.sleep(interval)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._all_settled.wait(), timeout=interval)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset Faust's commit uses: ``committable`` for batched partitions."""
        if tp.topic in self._batch_topics and self._committable is not None:
            return self._fetched_ends.commit_offset(tp, self._committable(tp),
                                                    self._read_offset.get(tp))
        return super()._new_offset(tp)

    def _position(self, tp: TP) -> int | None:
        """The aiokafka consumer's position of `tp`: the next offset it fetches."""
        return fetch_position(getattr(self._thread, "_consumer", None), tp)

    # -- the drain loop -------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:
        """Fetch batches in the consumer thread and deliver them, until the consumer stops.

        Replaces Faust's per-message loop; its stop conditions and error handling are Faust's.
        """
        if self._route is None:
            raise BatchesNotAttached(
                "BatchConsumer.attach(topics, route, committable) was not called before start")
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                await self._apply_rewinds()
                generation = self._seek_generation
                rewinds = dict(self._rewinds)
                records, active = await self._wait_next_records(FETCH_TIMEOUT_SECONDS)
                # Read at once: the positions this fetch left.
                ends = {tp: self._position(tp) for tp in {*self._fetched_ends.known(),
                                                          *(records or ())}}
                # As Faust: the fetch may return at once; give the loop a turn.
                await self.sleep(0)
                if records and not self.should_stop:
                    if not self.flow_active:
                        await self._seek_back_to_committed()
                    elif generation != self._seek_generation:
                        # Seeks to committed ran while this fetch was in flight: its records
                        # may come from either position. Drop them and seek again, so that
                        # whatever the fetch took is read again from the committed offsets.
                        await self._seek_back_to_committed()
                    else:
                        rewound = await self._apply_rewinds()
                        # Records of a partition rewound during the fetch are from the old
                        # position; the seek just done makes the partition's records come again.
                        await self._deliver(
                            {tp: raw for tp, raw in records.items() if tp not in rewound},
                            active, generation, rewinds, ends)
                elif not records and generation == self._seek_generation:
                    self._fetched_ends.fetching({}, ends)
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _seek_back_to_committed(self) -> None:
        # Faust's getmany does this for a fetch that returns while the flow is stopped: its
        # records are dropped, and the seek to the committed offsets makes them come again.
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 (Faust logs and goes on, as here)
            self.log.warning("exception performing seek when flow not active %r", exc)

    async def _deliver(
        self,
        records: Mapping[TP, list[Any]],
        active: set[TP] | None,
        generation: int,
        rewinds: Mapping[TP, int],
        ends: Mapping[TP, int | None] | None = None,
    ) -> None:
        """Deliver one fetch: partitions in turn, at most the fairness cap per handler call;
        `ends` are the consumer's positions after the fetch."""
        ends = ends or {}
        self._fetched_ends.fetching(records, ends)
        consumer_generation = self.app.consumer_generation_id
        pending = {
            tp: raw for tp, raw in records.items()
            if raw and (active is None or tp in active or tp in self._buffered_partitions)
        }
        cap = self.max_records_per_partition
        start = 0
        while pending:
            for tp in list(pending):
                raw = pending[tp]
                if not self._may_deliver(generation, consumer_generation):
                    return
                if rewinds.get(tp, 0) != self._rewinds.get(tp, 0) or not self._owns(tp):
                    del pending[tp]  # rewound or revoked since the fetch: stale
                    continue
                chunk = raw[start:start + cap]
                last = start + cap >= len(raw)
                if last:
                    del pending[tp]
                if tp.topic in self._batch_topics:
                    await self._deliver_batch(tp, chunk, (generation, rewinds.get(tp, 0)))
                    if (last and generation == self._seek_generation
                            and rewinds.get(tp, 0) == self._rewinds.get(tp, 0)):
                        self._fetched_ends.delivered(tp, ends.get(tp))
                else:
                    await self._deliver_messages(tp, chunk)
            start += cap

    def _may_deliver(self, generation: int, consumer_generation: int) -> bool:
        return (
            self.flow_active
            and not self.should_stop
            and generation == self._seek_generation
            and consumer_generation == self.app.consumer_generation_id
        )

    def _owns(self, tp: TP) -> bool:
        return tp in self._get_active_partitions() or tp in self._buffered_partitions

    async def _deliver_batch(self, tp: TP, raw: list[Any], stamp: tuple[int, int]) -> None:
        read_offset = self._read_offset[tp]
        if read_offset is not None and raw[0].offset < read_offset:
            raw = [record for record in raw if record.offset >= read_offset]
            if not raw:
                return
        # Set before the handler runs: a rewind it asks for must not be overwritten after.
        self._read_offset[tp] = raw[-1].offset + 1
        self._track(tp)
        batch = RecordBatch(tp, source_records(raw), stamp)
        route = self._route
        assert route is not None  # attach() sets it with the batch topics
        await self.wait_first(route.deliver(batch), self.suspend_flow.wait())

    def _track(self, tp: TP) -> None:
        # What Faust's per-message path feeds its monitor: the end offset (for lag) and the
        # time a stream last took an event (the livelock detector warns without it).
        monitor = self.app.monitor
        if monitor is not None:
            monitor.track_tp_end_offset(tp, self.highwater(tp))
            monitor.stream_inbound_time[tp] = monotonic()

    async def _deliver_messages(self, tp: TP, raw: list[Any]) -> None:
        """Faust's own per-message path, for topics that are not batched."""
        get_read_offset = self._read_offset.__getitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        for record in raw:
            if not self.flow_active:
                return
            offset = record.offset
            r_offset = get_read_offset(tp)
            if r_offset is not None and offset < r_offset:
                continue
            if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            self._read_offset[tp] = offset
