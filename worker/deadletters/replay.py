"""Dead-letter tooling: see what failed and why (`sluice dlq inspect`), and send it back
(`sluice dlq replay`) once the cause is fixed.

Replay re-produces the original bytes to the source topic. For one event of a batch record
(``sluice.batch_index``), only that event is replayed, with the batch's shared ``context`` and
``sentAt`` applied, so the batch's good events are not sent twice. Events with a producer id
(``messageId`` / ``requestId``) keep it, so Elasticsearch overwrites instead of duplicating.
Replayed records carry ``sluice.replayed_from: <dlq topic>/<partition>/<offset>`` and, when a
sink failed them, ``sluice.replay.sinks: <that sink>``: the worker writes them to that sink
only, so the sinks that already hold the event do not get it twice (``worker.pipeline.routing``).

A replay keeps the record's lineage: ``sluice.replay.count`` (1 on the first replay, then one
more each time), ``sluice.first_failure.stage`` / ``.class`` / ``.at`` (the first failure's, kept
across any number of replays), and ``sluice.replay.event_id``: the id the event had, so that an
event without a producer id (whose id is derived from its Kafka position) keeps it instead of
getting a new one at its new position (``worker.events.normalize``). A dead letter whose value was
truncated (``sluice.value_truncated``) is not the record that failed: replay refuses it
unless forced.

Dead letters belong to the consumer group that wrote them (``sluice.worker.group``): several
groups may read one source topic (one writing Elasticsearch, one S3) and share its dead-letter
topic, and each dead-letters a record that fails in it. Both commands select the letters of
one group (SLUICE_APP_ID unless told otherwise: ``DeadLetterFilter.groups``), and a replayed
record names its letter's group (``sluice.replay.group``): the workers of other groups skip it
(``worker.pipeline.routing``), so each group gets back its own failures, once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from worker.config import Settings, SinkName
from worker.events import json_codec
from worker.events.cloudwatch import is_gzip, with_one_log_event
from worker.events.records import (
    DLQ_HEADER_PREFIX,
    REPLAY_EVENT_ID_HEADER,
    REPLAY_GROUP_HEADER,
    REPLAY_SINKS_HEADER,
)
from worker.kafka.connection import client_options
from worker.kafka.topics import partition_counts


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter as read back from the topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    original_headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def stage(self) -> str:
        return self.headers.get("stage", "?")

    @property
    def error_class(self) -> str:
        return self.headers.get("error.class", "?")

    @property
    def source(self) -> str:
        """Where the record came from: ``topic[partition]@offset``."""
        headers = self.headers
        return (f"{headers.get('source.topic')}[{headers.get('source.partition')}]@"
                f"{headers.get('source.offset')}")

    @property
    def group(self) -> str | None:
        """The consumer group (SLUICE_APP_ID) whose worker wrote it; None if unknown."""
        return self.headers.get("worker.group") or None

    @property
    def truncated(self) -> bool:
        """The value is only the start of the record's (it was too large for the topic)."""
        return self.headers.get("value_truncated") == "true"

    @property
    def failed_at(self) -> datetime | None:
        text = self.headers.get("failed_at")
        return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a command applies to; empty fields match everything (``groups``
    empty: the letters of every group, and those that name none)."""

    stages: frozenset[str] = frozenset()
    error_classes: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    groups: frozenset[str] = frozenset()

    def matches(self, letter: DeadLetterRecord) -> bool:
        return self.of_groups(letter) and self.matches_apart_from_group(letter)

    def of_groups(self, letter: DeadLetterRecord) -> bool:
        """The letter was written by one of the chosen consumer groups (or any, if none)."""
        return not self.groups or letter.group in self.groups

    def matches_apart_from_group(self, letter: DeadLetterRecord) -> bool:
        if self.stages and letter.stage not in self.stages:
            return False
        if self.error_classes and letter.error_class not in self.error_classes:
            return False
        failed = letter.failed_at
        if self.since and (failed is None or failed < self.since):
            return False
        return not (self.until and (failed is None or failed >= self.until))


async def dead_letter_end_offsets(settings: Settings) -> dict[int, int]:
    """The dead-letter topic's end offset per partition (to read only what comes after)."""
    topic = settings.dead_letter_topic_name
    count = (await partition_counts(settings, [topic]))[topic]
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await _start(consumer)
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(count)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _start(consumer: AIOKafkaConsumer) -> None:
    """Start a consumer without a group so that it can be stopped at any time after.

    Such a consumer's coordinator starts a background task in `start()`; if `stop()` cancels
    that task before it ever ran (nothing awaited in between, as when there is nothing to
    read), aiokafka's `stop()` raises CancelledError (aiokafka 0.14). One turn of the event
    loop lets the task begin, and its own cancellation handling then works.
    """
    await consumer.start()
    await asyncio.sleep(0)


async def read_dead_letters(
    settings: Settings,
    start_offsets: dict[int, int] | None = None,
    end_offsets: dict[int, int] | None = None,
) -> list[DeadLetterRecord]:
    """The dead letters between two sets of offsets (default: all there are now), oldest first
    per partition."""
    topic = settings.dead_letter_topic_name
    start_offsets = start_offsets or {}
    end_offsets = end_offsets if end_offsets is not None else await dead_letter_end_offsets(
        settings)
    ends = {TopicPartition(topic, p): end for p, end in end_offsets.items()
            if end > start_offsets.get(p, 0)}
    if not ends:
        return []  # an empty topic (or nothing new): no consumer to start
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                enable_auto_commit=False)
    await _start(consumer)
    letters: list[DeadLetterRecord] = []
    try:
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, start_offsets.get(tp.partition, 0))
        while ends:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                break
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= ends.get(tp, -1):
                        continue
                    ours = {name.removeprefix(DLQ_HEADER_PREFIX): value.decode(errors="replace")
                            for name, value in message.headers
                            if name.startswith(DLQ_HEADER_PREFIX)}
                    theirs = tuple((name, value) for name, value in message.headers
                                   if not name.startswith(DLQ_HEADER_PREFIX))
                    letters.append(DeadLetterRecord(tp.partition, message.offset, message.key,
                                                    message.value, ours, theirs))
                if messages and messages[-1].offset + 1 >= ends.get(tp, 0):
                    ends.pop(tp, None)
    finally:
        await consumer.stop()
    return letters


@dataclass
class Inspection:
    """Counts by stage and error class, and a few samples of each; and the letters the
    selection would match but for their group, by group (None: a letter naming none)."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: dict[tuple[str, str], list[DeadLetterRecord]] = field(default_factory=dict)
    other_groups: Counter[str | None] = field(default_factory=Counter)


def inspect(letters: list[DeadLetterRecord], selection: DeadLetterFilter,
            samples_per_class: int = 3) -> Inspection:
    result = Inspection()
    for letter in letters:
        if not selection.matches_apart_from_group(letter):
            continue
        if not selection.of_groups(letter):
            result.other_groups[letter.group] += 1
            continue
        group = (letter.stage, letter.error_class)
        result.counts[group] += 1
        kept = result.samples.setdefault(group, [])
        if len(kept) < samples_per_class:
            kept.append(letter)
    return result


def describe_sample(letter: DeadLetterRecord, width: int = 80) -> list[str]:
    """Two lines for a person: where the letter came from (with its batch index) and why, and
    the start of its value (a null value and an empty one told apart)."""
    headers = letter.headers
    where = (f"{headers.get('source.topic')}[{headers.get('source.partition')}]@"
             f"{headers.get('source.offset')}")
    if headers.get("batch_index") is not None:
        where += f" batch[{headers['batch_index']}]"
    if letter.value is None:
        value = "null (no value)"
    elif not letter.value:
        value = "empty (0 bytes)"
    else:
        more = f" … ({len(letter.value)} bytes)" if len(letter.value) > width else ""
        value = repr(letter.value[:width].decode(errors="replace")) + more
    return [f"{where}: {headers.get('error.message', '')[:160]}", f"  value: {value}"]


def replay_value(letter: DeadLetterRecord) -> bytes | None:
    """What to send back: the record, or only the failed event of a batch record."""
    index = letter.headers.get("batch_index")
    if index is None or not letter.value:
        return letter.value
    if is_gzip(letter.value):  # a CloudWatch Logs record: that log event alone
        return with_one_log_event(letter.value, int(index), len(letter.value))
    envelope = json_codec.loads(letter.value)  # integers beyond 64 bits kept exactly
    event = dict(envelope["batch"][int(index)])
    if isinstance(envelope.get("context"), dict):
        own = event.get("context") if isinstance(event.get("context"), dict) else {}
        event["context"] = {**envelope["context"], **own}
    if envelope.get("sentAt") is not None:
        event.setdefault("sentAt", envelope["sentAt"])
    return json_codec.dumps(event)


def replay_headers(letter: DeadLetterRecord, topic: str,
                   to_group: str | None = None) -> list[tuple[str, bytes]]:
    """The original headers, where the replay comes from, the consumer group whose letter it
    is (only that group's workers take it; `to_group` sends it to another, e.g. the group
    that replaced a retired one), and, for a letter a sink failed, that sink: the pipeline then
    writes it to that sink only (`worker.pipeline.routing`), not again to the sinks that
    already have it."""
    origin = f"{topic}/{letter.partition}/{letter.offset}"
    ours = letter.headers
    lineage = {
        "replayed_from": origin,
        "replay.count": str(int(ours.get("replay.count", "0") or 0) + 1),
        "first_failure.stage": ours.get("first_failure.stage", letter.stage),
        "first_failure.class": ours.get("first_failure.class", letter.error_class),
        "first_failure.at": ours.get("first_failure.at", ours.get("failed_at")),
        REPLAY_EVENT_ID_HEADER.removeprefix(DLQ_HEADER_PREFIX): ours.get("event_id"),
    }
    headers = list(letter.original_headers) + [
        (f"{DLQ_HEADER_PREFIX}{name}", value.encode())
        for name, value in lineage.items() if value is not None]
    group = to_group or letter.group
    if group:
        headers.append((REPLAY_GROUP_HEADER, group.encode()))
    if letter.stage in {sink.value for sink in SinkName}:
        headers.append((REPLAY_SINKS_HEADER, letter.stage.encode()))
    return headers


async def replay(settings: Settings, letters: list[DeadLetterRecord], rate: float = 500.0,
                 tick: Callable[[int], None] | None = None,
                 to_group: str | None = None) -> int:
    """Produce the letters back to the source topic at most `rate` per second, each for its
    own consumer group (or `to_group`'s)."""
    topic = settings.dead_letter_topic_name
    producer = AIOKafkaProducer(**client_options(settings), acks="all",
                                enable_idempotence=True,
                                max_request_size=2 * settings.max_record_bytes + 65536)
    await producer.start()
    started = time.monotonic()
    try:
        for sent, letter in enumerate(letters, start=1):
            headers = replay_headers(letter, topic, to_group)
            await producer.send_and_wait(settings.source_topic, value=replay_value(letter),
                                         key=letter.key, headers=headers)
            if tick:
                tick(1)
            ahead = sent / rate - (time.monotonic() - started) if rate > 0 else 0
            if ahead > 0:
                await asyncio.sleep(ahead)
        return len(letters)
    finally:
        await producer.stop()
