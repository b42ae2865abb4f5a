"""The pipeline: decode → normalise → enrich → fan out to the sinks → acknowledge.

This module wires the steps together and keeps the books; each step lives in its own module
(``preparation`` runs ``events.decoding``, ``events.normalize`` and ``catalog.enrichment`` over a
batch; then ``sinks``, ``deadletters.publisher``, ``acks``). The Faust agent hands every source
record to ``Pipeline.submit`` together with the callable that acknowledges it to Faust; that
callable runs only once every sink has durably written, or the dead-letter topic has accepted, every
event of the record, and only after all earlier records of the same partition (see
``worker.pipeline.acks``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence

from worker.catalog.enrichment import CatalogLookup
from worker.config import Settings
from worker.deadletters.limit import DeadLetterLimit
from worker.deadletters.publisher import DeadLetterPublisher
from worker.events.errors import SluiceError
from worker.events.records import DeadLetter, Event, Settlement, SourceRecord
from worker.pipeline.acks import AckTracker, PartitionKey, ordinals_mask
from worker.pipeline.dedupe import DedupeWindow
from worker.pipeline.preparation import Preparation, PreparedBatch
from worker.pipeline.progress import Progress
from worker.sinks.base import Sink, SinkFailure

log = logging.getLogger(__name__)


class Pipeline:
    """Turns source records into sink writes and dead letters, and acknowledges them in order."""

    def __init__(
        self,
        settings: Settings,
        dead_letters: DeadLetterPublisher,
        catalog: CatalogLookup,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.dead_letters = dead_letters
        self.catalog = catalog
        self.sinks: list[Sink] = []
        self.progress = progress or Progress()
        # Shares the sink list: sinks added later are routed to as well.
        self._preparation = Preparation(settings, catalog, self.sinks, self.progress)
        self.acks = AckTracker(settings.max_in_flight_records)
        self.dead_letter_counts: Counter[tuple[str, str]] = Counter()
        self.dead_letter_limit = DeadLetterLimit(settings.dead_letter_limit_ratio,
                                                 settings.dead_letter_limit_window,
                                                 settings.dead_letter_limit_consecutive)
        # Bumped by a drain: dead letters held by the tripped limit let go of their sinks.
        self._limit_releases = 0
        # Set by the app: consume a partition again from its committed offset (see `lost`).
        self.recover: Callable[[PartitionKey], object] | None = None
        self._recovering: set[PartitionKey] = set()
        self.recoveries = 0
        # Set by the app: leave the group's generation so that it rebalances (see `contested`).
        self.regroup: Callable[[], object] | None = None
        self._regrouped_at = -math.inf
        self.regroups = 0
        # Set once the worker stops: records handed in after the final drain are left alone
        # (not acknowledged), to be consumed again by the partitions' next owner.
        self.closed = False

    def add_sink(self, make_sink: Callable[[Pipeline], Sink]) -> Sink:
        """Attach a sink built with this pipeline as its outcome listener."""
        sink = make_sink(self)
        self.sinks.append(sink)
        return sink

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.dead_letters.start()
        for sink in self.sinks:
            await sink.start()
        log.info("pipeline started: sinks %s", ", ".join(s.name for s in self.sinks) or "none")

    async def stop(self) -> None:
        self.closed = True
        for sink in self.sinks:
            await sink.stop()
        await self.dead_letters.stop()

    async def drain(self, timeout: float) -> bool:
        """Flush every sink and wait until nothing is in flight, or `timeout` s have passed.

        Called before offsets are committed on a rebalance and at shutdown. Returns False if
        records were still in flight at the timeout; they stay uncommitted and are consumed
        again by the partition's next owner.
        """
        async def flush_all() -> None:
            # Flush until idle: a record the agent was holding (waiting for room) may arrive
            # after the first flush, and must not sit in an open part until its age limit.
            while True:
                self._release_held_dead_letters()
                await asyncio.gather(*(sink.flush() for sink in self.sinks))
                if not self.acks.in_flight or self.dead_letter_limit.tripped:
                    return  # held records stay unsettled: the next owner consumes them
                try:
                    await asyncio.wait_for(self.acks.wait_idle(), 0.5)
                    return
                except TimeoutError:
                    continue

        try:
            await asyncio.wait_for(flush_all(), timeout)
            return True
        except TimeoutError:
            log.warning(
                "drain: %d records still in flight after %.0fs (%s); they will be consumed again",
                self.acks.in_flight, timeout, self.acks.pending_by_partition(),
            )
            return False

    # --- ownership ------------------------------------------------------------------------

    def assign(self, partitions: Collection[PartitionKey]) -> None:
        """Partitions were assigned: open a generation for each and let the sinks prepare
        them (the S3 sink takes their markers over). Synchronous on purpose: it runs before
        Faust resumes fetching, so no record of these partitions can arrive first."""
        fresh = [key for key in partitions if not self.acks.is_assigned(key)]
        self.acks.assign(fresh)
        self._preparation.dedupe.forget(fresh)
        for sink in self.sinks:
            sink.assign(fresh)

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        """Partitions were revoked: drop their unfinished records (no ack, no commit)."""
        dropped = self.acks.forget(partitions)
        self._preparation.dedupe.forget(list(partitions))
        for sink in self.sinks:
            await sink.forget(partitions)
        if dropped:
            log.info("dropped %d unfinished records of revoked partitions", dropped)

    def lost(self, sink: str, partition: PartitionKey, reason: str) -> None:
        """A sink lost events of an assigned partition without an outcome (a bug, or the
        partition's marker taken by another worker): those records would never settle, so the
        partition is recovered by consuming it again from its oldest unsettled record."""
        self.stuck(partition, f"{sink}: {reason}")

    def contested(self, sink: str, partition: PartitionKey, reason: str) -> None:
        """Another worker holds a partition the group assigned to us. Recovered as `lost`;
        and since two members then think they own it (and a third partition may have no
        owner), the worker also rejoins the group, at most once a session timeout, so that
        the group rebalances and every member takes the leader's plan again.

        Seen on the local stack's broker: a static member restarted under its
        ``group.instance.id`` was given another member's partitions without a rebalance, so
        two workers took each other's S3 claims in turn for minutes while two partitions had
        no owner. During an ordinary rebalance the old owner's partition is already revoked
        when it sees the new owner's claim, and nothing happens here."""
        if not self.acks.is_assigned(partition):
            return
        self.lost(sink, partition, reason)
        now = time.monotonic()
        if self.regroup is None or now - self._regrouped_at < self.settings.session_timeout:
            return
        self._regrouped_at = now
        self.regroups += 1
        log.error("%s[%d]: another worker holds this partition, which the group assigned to "
                  "this worker: rejoining the group so that it rebalances", *partition,
                  extra={"topic": partition[0], "partition": partition[1],
                         "error_class": "AssignmentConflict"})
        self.regroup()

    def stuck(self, partition: PartitionKey, reason: str) -> None:
        """Records of `partition` cannot settle: consume it again from its oldest unsettled
        record (the app's `recover`), once at a time until `recovered`."""
        if not self.acks.is_assigned(partition):
            return  # revoked meanwhile: its next owner consumes it again anyway
        if partition in self._recovering:
            return
        self._recovering.add(partition)
        self.recoveries += 1
        log.error("%s[%d]: records can no longer settle (%s): consuming the partition again "
                  "from its oldest unsettled record", *partition, reason,
                  extra={"topic": partition[0], "partition": partition[1],
                         "error_class": "PartitionRecovery"})
        if self.recover is None:
            log.error("no recovery is wired in: the partition stays stalled")
            return
        self.recover(partition)

    def recovered(self, partitions: Collection[PartitionKey]) -> None:
        """The app reassigned these partitions after a recovery."""
        self._recovering.difference_update(partitions)

    def stalled(self, bound: float) -> dict[PartitionKey, float]:
        """Partitions whose oldest record has waited more than `bound` seconds to settle."""
        return {key: age for key, age in self.acks.oldest_unsettled().items() if age > bound}

    # --- the hot path ----------------------------------------------------------------------

    async def submit(self, record: SourceRecord,
                     ack: Callable[[], object] | None = None) -> None:
        """Take one source record (a batch of one); see `submit_batch`."""
        await self.submit_batch([record], ack)

    async def submit_batch(self, records: Sequence[SourceRecord],
                           ack: Callable[[], object] | None = None) -> None:
        """Take consecutive records of one partition, as fetched; returns when their events
        are handed to every sink. Their acknowledgement is the partition's committable offset
        (`committable`), and `ack` if given, once every share of the batch is settled.

        Never raises (but for cancellation): a batch whose work cannot be handed on is
        recovered by consuming its partition again (see `lost`), never left unsettled.
        """
        if self.closed or not records:
            return
        first = records[0].position
        key = (first.topic, first.partition)
        generation = self.acks.generation(key)
        if generation is None:
            return  # not (or no longer) ours: the partition's owner consumes it
        seen = self.acks.last_opened(key)
        if first.offset <= seen:  # delivered again within this generation: open the rest
            records = [record for record in records if record.position.offset > seen]
            if not records:
                return
        if self.dead_letter_limit.tripped and not await self._paused(key, generation):
            return  # revoked or stopping meanwhile: the partition's next owner consumes them
        await self.acks.reserve()
        try:
            await self._submit(key, records, ack, generation)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 (no error may leave a record unsettled)
            log.exception("unexpected error handling %s[%d] offsets %d-%d", *key,
                          records[0].position.offset, records[-1].position.offset)
            self.lost("pipeline", key, f"{type(error).__name__}: {error}")

    @property
    def dedupe(self) -> DedupeWindow:
        """The retry window before the sinks (``worker.pipeline.dedupe``), for the metrics."""
        return self._preparation.dedupe

    def committable(self, partition: PartitionKey) -> int | None:
        """The offset that may be committed for `partition` (see AckTracker.committable)."""
        return self.acks.committable(partition)

    async def _submit(self, key: PartitionKey, records: Sequence[SourceRecord],
                      ack: Callable[[], object] | None, generation: int) -> None:
        self.progress.add("records", len(records))
        prepared = self._preparation.prepare_batch(records)
        events, failures = prepared.events, prepared.failures
        ticket = self.acks.open(records[0].position, self._share_masks(prepared), ack, generation,
                                end_offset=records[-1].position.offset + 1,
                                records=len(records))
        if ticket is None:
            return  # revoked meanwhile, or already opened: see AckTracker.open
        self.progress.add("events", len(events))
        self.dead_letter_limit.decoded(len(events))
        if failures:
            await asyncio.gather(*(
                self._dead_letter(failure.record, failure.error, ticket,
                                  batch_index=failure.batch_index,
                                  share=(failure.ordinal, failure.error.stage))
                for failure in failures
            ))
        if not events or not self.sinks:
            return
        for event in events:
            event.ticket = ticket
        # Each sink may hold us here while its buffers are full. Awaited one after the other:
        # the agent cannot move on before every sink has accepted the events anyway. A
        # partition revoked while we waited is not written on: its next owner has the records.
        for sink in self.sinks:
            if ticket.cancelled:
                return
            sink_events = prepared.for_sink(sink.name)
            if sink_events:
                await sink.write(sink_events)

    def _share_masks(self, prepared: PreparedBatch) -> dict[str, int]:
        """The batch's shares as bitmaps per sink and dead-letter stage (see `acks`)."""
        events, failures = prepared.events, prepared.failures
        masks: dict[str, int] = {}
        # Without failures the events are numbered 0, 1, … n-1: one mask of n bits.
        every_event = (1 << len(events)) - 1 if not failures else ordinals_mask(
            event.ordinal for event in events)
        for sink in self.sinks:
            masks[sink.name] = (every_event if prepared.routed is None else ordinals_mask(
                event.ordinal for event in prepared.for_sink(sink.name)))
        for failure in failures:
            stage = failure.error.stage
            masks[stage] = masks.get(stage, 0) | (1 << failure.ordinal)
        return masks

    # --- outcomes (the SinkOutcomes protocol) -----------------------------------------------

    def delivered(self, sink: str, events: Sequence[Event]) -> None:
        # Settled per ticket with one mask: a sink delivers a batch's events together, in order.
        ticket, mask = None, 0
        for event in events:
            if event.ticket is not ticket:
                if ticket is not None:
                    ticket.settle_many(sink, mask)
                ticket, mask = event.ticket, 0
            mask |= 1 << event.ordinal
        if ticket is not None:
            ticket.settle_many(sink, mask)
        self.progress.add(f"delivered.{sink}", len(events))
        self.dead_letter_limit.delivered(len(events))

    async def failed(self, sink: str, failures: Sequence[SinkFailure]) -> None:
        for failure in failures:
            event = failure.event
            await self._dead_letter(
                event.record,
                failure.error,
                event.ticket,
                share=(event.ordinal, sink),
                batch_index=event.batch_index,
                event_id=event.event_id,
                attempts=failure.attempts,
            )

    async def _hold(self, ticket: Settlement | None) -> None:
        """The dead-letter limit is tripped: neither write nor settle this share, so nothing
        from here on is committed; wait (the agent or the sink with us) until the partition
        is revoked, a drain lets go, or the worker stops."""
        releases = self._limit_releases
        # Polled: a ticket's revocation and the pipeline's closing have no event to wait on.
        while not (self.closed or releases != self._limit_releases  # noqa: ASYNC110
                   or (ticket is not None and ticket.cancelled)):
            await asyncio.sleep(0.5)

    async def _paused(self, key: PartitionKey, generation: int) -> bool:
        """The dead-letter limit is tripped, at decode or at a sink: hold the agent here before
        it opens anything more, so consumption pauses at once (a sink reports its dead letters
        off the agent's path, and without this the agent would go on consuming up to
        SLUICE_MAX_IN_FLIGHT_RECORDS). The limit holds until the worker restarts, so this waits
        until the partition is revoked (or recovered) or the worker stops; returns True only if
        the batch is still this generation's to process."""
        # Polled, as in `_hold`: neither a revocation nor the pipeline's closing has an event.
        while (self.dead_letter_limit.tripped and not self.closed  # noqa: ASYNC110
               and self.acks.generation(key) == generation):
            await asyncio.sleep(0.5)
        return not self.closed and self.acks.generation(key) == generation

    def _release_held_dead_letters(self) -> None:
        if self.dead_letter_limit.tripped:
            self._limit_releases += 1

    async def _dead_letter(
        self,
        record: SourceRecord,
        error: SluiceError,
        ticket: Settlement | None,
        *,
        share: tuple[int, str],
        batch_index: int | None = None,
        event_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Publish a dead letter for one share, then settle it. A share that already has an
        outcome (or a revoked record) is not dead-lettered again."""
        if ticket is not None and not ticket.is_pending(share):
            if not ticket.cancelled:
                self.acks.duplicate_settlements += 1
            return
        if self.dead_letter_limit.dead_lettered(error.stage):
            await self._hold(ticket)
            return
        letter = DeadLetter(
            record=record,
            stage=error.stage,
            error_class=error.code,
            message=str(error),
            retriable=error.retriable,
            attempts=attempts,
            batch_index=batch_index,
            event_id=event_id,
        )
        try:
            await self.dead_letters.publish(letter)
        except asyncio.CancelledError:
            raise
        except Exception as failure:  # noqa: BLE001 (the record must not stay unsettled)
            log.exception("could not write a dead letter for %s", record.position)
            self.lost("dead-letters", (record.position.topic, record.position.partition),
                      f"dead letter not written: {type(failure).__name__}: {failure}")
            return
        self.progress.add(f"dead_lettered.{error.stage}")
        self.dead_letter_counts[(error.stage, error.code)] += 1
        if ticket:
            ticket.settle(share)
