"""Turning a batch of source records into events: decode, normalise, enrich, encode.

The first half of the pipeline (``worker.pipeline.wiring`` hands the events on to the sinks and
keeps the books). Each step lives in its own module (``events.decoding``, ``events.normalize``,
``catalog.enrichment``); here they run over a batch, each event is numbered within its record (its
ordinal names its shares of the record's ticket, see ``worker.pipeline.acks``), and what fails is
collected as a ``Failure`` for the dead-letter topic instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.catalog.enrichment import CatalogLookup, Enrichment, enrich
from worker.config import Settings
from worker.events import json_codec
from worker.events.decoding import RawEvent, classify, decode_value
from worker.events.errors import DecodeError, SluiceError, UnencodableEvent
from worker.events.ingest_headers import apply_ingest_meta, ingest_meta
from worker.events.normalize import normalize
from worker.events.records import Event, SourceRecord
from worker.events.typed_forms import typed_record
from worker.pipeline.dedupe import DedupeWindow, PartitionWindow, is_replayed, producer_id
from worker.pipeline.progress import Progress
from worker.pipeline.routing import replayed_for_another_group, route
from worker.sinks.base import Sink

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Failure:
    """An event (or a whole record) that failed before reaching the sinks."""

    ordinal: int
    record: SourceRecord
    batch_index: int | None
    error: SluiceError


@dataclass(slots=True)
class PreparedBatch:
    """A batch's events and failures; `routed` holds the events of replayed records, which go
    only to the sinks their dead letter names (``worker.pipeline.routing``)."""

    events: list[Event] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    routed: dict[str, list[Event]] | None = None

    def for_sink(self, sink: str) -> list[Event]:
        if self.routed is None:
            return self.events
        return self.routed.get(sink, [])


class Preparation:
    """Prepares batches for the pipeline's sinks (the list is shared: sinks added later count)."""

    def __init__(self, settings: Settings, catalog: CatalogLookup, sinks: Sequence[Sink],
                 progress: Progress) -> None:
        self.settings = settings
        self.catalog = catalog
        self.sinks = sinks
        self.progress = progress
        self.dedupe = DedupeWindow(settings.dedupe_window, settings.dedupe_max_ids)

    def prepare_batch(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        """Decode, normalise, enrich and encode a batch; number its events and failures."""
        prepared = PreparedBatch()
        events, failures = prepared.events, prepared.failures
        ordinal = 0
        max_bytes = self.settings.max_record_bytes
        group = self.settings.app_id
        keep_headers = self.settings.document_headers
        for record in records:
            if record.headers and replayed_for_another_group(record, group):
                # Another group's dead letter sent back: no event, no dead letter here (that
                # group processes it); the record is acknowledged as it is.
                self.progress.add("replays_of_other_groups")
                continue
            # What `sluice ingest` recorded: it changes the events, so the typed pass stands
            # aside (normalize still takes their common shapes one at a time).
            meta = ingest_meta(record.headers) if record.headers else None
            typed = None
            try:
                decoded = decode_value(record.value, max_bytes)
                if type(decoded) is dict:
                    if meta is None:
                        typed = typed_record(decoded, record, keep_headers)
                    decoded = classify(decoded) if typed is None else None
            except DecodeError as error:
                failures.append(Failure(ordinal, record, None, error))
                ordinal += 1
                continue
            window = (self.dedupe.begin(record)
                      if self.dedupe.enabled and not (record.headers and is_replayed(record))
                      else None)
            first_event = len(events)
            if decoded is None:  # the record's own event, normalised by the typed pass
                ordinal += self._admit(prepared, record, window, None, ordinal, typed)
            else:
                if meta is not None:
                    apply_ingest_meta(decoded, meta)
                for batch_index, error in decoded.failures:
                    failures.append(Failure(ordinal, record, batch_index, error))
                    ordinal += 1
                for raw in decoded.events:
                    ordinal += self._admit(prepared, record, window, raw, ordinal, None)
            if record.headers or prepared.routed is not None:
                ordinal = self._route(prepared, record, events[first_event:], ordinal)
        return prepared

    def _admit(self, prepared: PreparedBatch, record: SourceRecord,
               window: PartitionWindow | None, raw: RawEvent | None, ordinal: int,
               typed: tuple[str, dict[str, Any]] | None) -> int:
        """Normalise (`raw`; `typed` is already), enrich and encode one event, and file it
        with `ordinal`, or its failure; the ordinals taken (1, or 0 for a retry's copy, left
        out: a batch without failures has its events numbered 0 .. n-1, worker.pipeline.wiring)."""
        batch_index = None if raw is None else raw.batch_index
        try:
            event_id, document = typed if raw is None else normalize(  # type: ignore[misc]
                raw, record, self.settings.document_headers)
            event = self._prepare(event_id, document, record, batch_index)
        except DecodeError as error:
            prepared.failures.append(Failure(ordinal, record, batch_index, error))
            return 1
        except Exception as error:  # noqa: BLE001 (no input may crash the agent)
            log.exception("unexpected error preparing an event of %s", record.position)
            prepared.failures.append(Failure(ordinal, record, batch_index, UnencodableEvent(
                f"the event could not be prepared: {type(error).__name__}: {error}")))
            return 1
        if window is not None:
            # The typed pass takes only events whose id their producer gave.
            given = event_id if raw is None else producer_id(raw, event_id)
            if given is not None and self.dedupe.seen(window, given):
                self.progress.add("duplicates")
                return 0  # a retry's copy: no sink gets it (worker.pipeline.dedupe)
        event.ordinal = ordinal
        prepared.events.append(event)
        return 1

    def _route(self, prepared: PreparedBatch, record: SourceRecord, record_events: list[Event],
               ordinal: int) -> int:
        """File a record's events by the sinks they go to; a replayed record's go only to the
        sinks that failed them (``worker.pipeline.routing``). Returns the next free ordinal."""
        targets = route(record, self.sinks)
        if prepared.routed is None:
            if len(targets.sinks) == len(self.sinks) and not targets.absent:
                return ordinal  # the common case: every event to every sink
            earlier = prepared.events[:len(prepared.events) - len(record_events)]
            prepared.routed = {sink.name: list(earlier) for sink in self.sinks}
        for sink in targets.sinks:
            prepared.routed[sink.name].extend(record_events)
        for batch_index, error in targets.absent_failures(record_events):
            prepared.failures.append(Failure(ordinal, record, batch_index, error))
            ordinal += 1
        return ordinal

    def _prepare(self, event_id: str, document: dict[str, Any], record: SourceRecord,
                 batch_index: int | None) -> Event:
        """Enrich and encode one normalised event; DecodeError if it cannot be."""
        if enrich(document, self.catalog) is Enrichment.UNKNOWN_KEY:
            self.progress.add("unenriched")
        try:
            encoded = orjson.dumps(document)
        except TypeError:
            # An integer beyond 64 bits (written with its exact digits), or nesting deeper than
            # JSON encoders allow; only such events take this second pass.
            try:
                encoded = json_codec.dumps(document)
            except TypeError as error:
                raise UnencodableEvent(f"the event cannot be encoded as JSON: {error}") from None
        return Event(event_id, document, record, batch_index, encoded=encoded)
