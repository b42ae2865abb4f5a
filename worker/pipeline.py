"""The pipeline: decode → normalise → enrich → fan out to the sinks → acknowledge.

This module wires the steps together and keeps the books; each step lives in its own module
(``decoding``, ``normalize``, ``enrich``, ``sinks``, ``deadletter``, ``acks``). The Faust agent
hands every source record to ``Pipeline.submit`` together with the callable that acknowledges
it to Faust; that callable runs only once every sink has durably written, or the dead-letter
topic has accepted, every event of the record, and only after all earlier records of the same
partition (see ``worker.acks``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence

import orjson

from worker.acks import AckTracker, PartitionKey
from worker.config import Settings
from worker.deadletter import DeadLetterPublisher
from worker.decoding import RawEvent, decode_record
from worker.enrich import CatalogLookup, Enrichment, enrich
from worker.errors import DecodeError, SluiceError, UnencodableEvent
from worker.normalize import normalize
from worker.progress import Progress
from worker.records import DeadLetter, Event, Settlement, SourceRecord
from worker.routing import route
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
        self.acks = AckTracker(settings.max_in_flight_records)
        self.dead_letter_counts: Counter[tuple[str, str]] = Counter()
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
                await asyncio.gather(*(sink.flush() for sink in self.sinks))
                if not self.acks.in_flight:
                    return
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

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        """Partitions were revoked: drop their unfinished records (no ack, no commit)."""
        dropped = self.acks.forget(partitions)
        for sink in self.sinks:
            await sink.forget(partitions)
        if dropped:
            log.info("dropped %d unfinished records of revoked partitions", dropped)

    # --- the hot path ----------------------------------------------------------------------

    async def submit(self, record: SourceRecord, ack: Callable[[], object]) -> None:
        """Take one source record; returns when its events are handed to every sink."""
        if self.closed:
            return
        key = (record.position.topic, record.position.partition)
        generation = self.acks.generation(key)
        await self.acks.reserve()
        self.progress.add("records")
        try:
            decoded = decode_record(record.value, self.settings.max_record_bytes)
        except DecodeError as error:
            ticket = self.acks.open(record.position, 1, ack, generation)
            if ticket:
                await self._dead_letter(record, error, ticket)
            return

        events: list[Event] = []
        failures: list[tuple[int | None, SluiceError]] = list(decoded.failures)
        for raw in decoded.events:
            try:
                events.append(self._prepare(raw, record))
            except DecodeError as error:
                failures.append((raw.batch_index, error))
            except Exception as error:  # noqa: BLE001 (no input may crash the agent)
                log.exception("unexpected error preparing an event of %s", record.position)
                failures.append((raw.batch_index, UnencodableEvent(
                    f"the event could not be prepared: {type(error).__name__}: {error}")))

        # A dead letter's replay goes only to the sink(s) that failed it (worker.routing).
        targets = route(record, self.sinks)
        failures += targets.absent_failures(events)
        shares = len(events) * len(targets.sinks) + len(failures)
        ticket = self.acks.open(record.position, shares, ack, generation)
        if ticket is None:
            return  # revoked meanwhile: the partition's next owner consumes it again
        self.progress.add("events", len(events))
        if failures:
            await asyncio.gather(*(
                self._dead_letter(record, error, ticket, batch_index=batch_index)
                for batch_index, error in failures
            ))
        if not events or not targets.sinks:
            return
        for event in events:
            event.ticket = ticket
        # Each sink may hold us here while its buffers are full. Awaited one after the other: a
        # write that does not wait costs no task (gather made one per sink per record), and the
        # agent cannot move on before every sink has accepted the events anyway.
        for sink in targets.sinks:
            await sink.write(events)

    def _prepare(self, raw: RawEvent, record: SourceRecord) -> Event:
        """Normalise, enrich and encode one event; DecodeError if it cannot be."""
        event_id, document = normalize(raw, record)
        if enrich(document, self.catalog) is Enrichment.UNKNOWN_KEY:
            self.progress.add("unenriched")
        try:
            encoded = orjson.dumps(document)
        except TypeError as error:  # e.g. nested more deeply than JSON encoders allow
            raise UnencodableEvent(f"the event cannot be encoded as JSON: {error}") from None
        return Event(event_id, document, record, raw.batch_index, encoded=encoded)

    # --- outcomes (the SinkOutcomes protocol) -----------------------------------------------

    def delivered(self, sink: str, events: Sequence[Event]) -> None:
        for event in events:
            if event.ticket:
                event.ticket.settle()
        self.progress.add(f"delivered.{sink}", len(events))

    async def failed(self, sink: str, failures: Sequence[SinkFailure]) -> None:
        for failure in failures:
            event = failure.event
            await self._dead_letter(
                event.record,
                failure.error,
                event.ticket,
                batch_index=event.batch_index,
                event_id=event.event_id,
                attempts=failure.attempts,
            )

    async def _dead_letter(
        self,
        record: SourceRecord,
        error: SluiceError,
        ticket: Settlement | None,
        *,
        batch_index: int | None = None,
        event_id: str | None = None,
        attempts: int = 1,
    ) -> None:
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
        await self.dead_letters.publish(letter)
        self.progress.add(f"dead_lettered.{error.stage}")
        self.dead_letter_counts[(error.stage, error.code)] += 1
        if ticket:
            ticket.settle()
