"""Dead letters: records (or events of a batch) that cannot be delivered, kept with the reason.

A dead letter is the **original record**, key and value bytes unchanged, on the dead-letter
topic, with the original headers plus these (all UTF-8 text):

=========================  =====================================================================
``sluice.stage``           ``decode`` or the sink's name (``counting``, ``elasticsearch``, ``s3``)
``sluice.error.class``     the error's class, e.g. ``InvalidJson``, ``SinkRejected``
``sluice.error.message``   what went wrong, for a person (at most 2000 characters)
``sluice.retriable``       ``true`` if replaying the record unchanged may succeed
``sluice.source.topic``    where the record came from …
``sluice.source.partition``
``sluice.source.offset``
``sluice.source.timestamp`` … and its Kafka timestamp (ms)
``sluice.failed_at``       when it was dead-lettered (UTC ISO-8601)
``sluice.attempts``        how many times delivery was tried
``sluice.batch_index``     for one event of a batch record: its index in ``batch``
``sluice.event_id``        the event's id, when it got as far as having one
``sluice.worker.group``    the consumer group (SLUICE_APP_ID) and …
``sluice.worker.host``     … the host of the worker that wrote it
=========================  =====================================================================

A dead letter belongs to the group that wrote it: groups reading one source topic share its
dead-letter topic, and each writes its own letter for a record that fails in it.
``sluice dlq inspect`` and ``replay`` select by ``sluice.worker.group`` (SLUICE_APP_ID by
default), and a replayed record goes to its letter's group only (``worker.deadletters.replay``).

The ``sluice.*`` headers a record arrived with are kept, except those named above (they describe
this failure): a replayed record's lineage (``sluice.replay.count``, ``sluice.first_failure.*``,
``sluice.replayed_from``, ``sluice.replay.event_id``, set by ``sluice dlq replay``) survives a
second failure.

Writing a dead letter is part of the record's acknowledgement: the source offset is committed
only after the broker has accepted the dead letter. If the broker refuses, the write is retried
with backoff until it succeeds or the worker stops (the record is then consumed again).
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from worker.config import Settings
from worker.events.records import DLQ_HEADER_PREFIX, DeadLetter
from worker.kafka.connection import client_options

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
MAX_DEAD_LETTER_REQUEST_BYTES = 64 * 1024 * 1024
# What is kept of a value the dead-letter topic refuses as too large.
TRUNCATED_VALUE_BYTES = 512 * 1024


class _Original:
    """Marks "the original record's key" (None is a key of its own: no key)."""


_ORIGINAL = _Original()


# Set on every dead letter anew: an incoming header of these names described an earlier failure.
_PER_FAILURE = frozenset({"value_truncated", "value_size"})


def dead_letter_headers(letter: DeadLetter, failed_at: datetime,
                        origin: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    """The original headers (with their ``sluice.*`` lineage) followed by Sluice's own, as the
    table above describes; `origin` adds the worker's group and host."""
    position = letter.record.position
    ours: dict[str, object | None] = {
        "stage": letter.stage,
        "error.class": letter.error_class,
        "error.message": letter.message[:MAX_MESSAGE_CHARS],
        "retriable": "true" if letter.retriable else "false",
        "source.topic": position.topic,
        "source.partition": position.partition,
        "source.offset": position.offset,
        "source.timestamp": letter.record.timestamp_ms,
        "failed_at": failed_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "attempts": letter.attempts,
        "batch_index": letter.batch_index,
        "event_id": letter.event_id,
        **(origin or {}),
    }
    replaced = _PER_FAILURE | ours.keys()
    original = [
        (name, value) for name, value in letter.record.headers
        if not (name.startswith(DLQ_HEADER_PREFIX)
                and name.removeprefix(DLQ_HEADER_PREFIX) in replaced)
    ]
    return original + [
        (f"{DLQ_HEADER_PREFIX}{name}", str(value).encode())
        for name, value in ours.items()
        if value is not None
    ]


class DeadLetterPublisher:
    """Produces dead letters and returns only once the broker has them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.dead_letter_topic_name
        self._producer: AIOKafkaProducer | None = None
        self.published = 0
        self.origin = {"worker.group": settings.app_id, "worker.host": socket.gethostname()}

    async def start(self) -> None:
        # aiokafka clients bind to the running loop: create it here, not in __init__.
        self._producer = AIOKafkaProducer(
            **client_options(self.settings),
            client_id=f"{self.settings.app_id}-dead-letters",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # The client-side cap only: a record that fit in the source topic must fit here too
            # (oversized records are dead-lettered whole). The broker has the last word.
            max_request_size=MAX_DEAD_LETTER_REQUEST_BYTES,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer:
            await self._producer.stop()

    async def publish(self, letter: DeadLetter) -> None:
        """Write one dead letter; retry (forever, with backoff) while the broker is unavailable.

        If the broker refuses the record itself (too large for the dead-letter topic), the
        value is cut to its first 512 KiB and the headers say so (``sluice.value_truncated``,
        ``sluice.value_size``): a shortened dead letter beats a worker stuck on one record.
        """
        headers = dead_letter_headers(letter, datetime.now(UTC), self.origin)
        try:
            await self._send_with_retries(letter, headers)
        except (MessageSizeTooLargeError, RecordTooLargeError):
            value = letter.record.value or b""
            size_headers = [
                (f"{DLQ_HEADER_PREFIX}value_truncated", b"true"),
                (f"{DLQ_HEADER_PREFIX}value_size", str(len(value)).encode()),
            ]
            log.warning("dead letter of %d bytes refused as too large: writing its first %d",
                        len(value), TRUNCATED_VALUE_BYTES)
            try:
                await self._send_with_retries(
                    letter, headers + size_headers,
                    value[:TRUNCATED_VALUE_BYTES])
            except (MessageSizeTooLargeError, RecordTooLargeError):
                # Still too large (a small topic limit, or huge headers or key): the last resort
                # keeps only Sluice's own headers, which say where the original record is.
                log.warning("dead letter refused again as too large: writing it without its "
                            "value, key and original headers")
                ours = [(name, header) for name, header in headers
                        if name.startswith(DLQ_HEADER_PREFIX)]
                await self._send_with_retries(letter, ours + size_headers, b"", key=None)
        self.published += 1
        position = letter.record.position
        log.info(
            "dead-lettered %s[%d]@%d%s stage=%s error=%s: %s",
            position.topic, position.partition, position.offset,
            f" batch[{letter.batch_index}]" if letter.batch_index is not None else "",
            letter.stage, letter.error_class, letter.message[:300],
            extra={"topic": position.topic, "partition": position.partition,
                   "offset": position.offset, "stage": letter.stage,
                   "error_class": letter.error_class, "batch_index": letter.batch_index},
        )

    async def _send_with_retries(
        self, letter: DeadLetter, headers: list[tuple[str, bytes]], value: bytes | None = None,
        key: bytes | None | _Original = _ORIGINAL,
    ) -> None:
        value = letter.record.value if value is None else value
        record_key = letter.record.key if isinstance(key, _Original) else key
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_retriable),
            wait=wait_exponential_jitter(initial=0.2, max=10.0),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning(
                        "dead-letter write retry %d for %s[%d]@%d",
                        attempt.retry_state.attempt_number - 1,
                        letter.record.position.topic,
                        letter.record.position.partition,
                        letter.record.position.offset,
                    )
                assert self._producer is not None, "DeadLetterPublisher.start() was not called"
                delivery = await self._producer.send(
                    self.topic, key=record_key, value=value, headers=headers
                )
                await delivery


def _is_retriable(error: BaseException) -> bool:
    """Broker and connection trouble is retried; a refusal of the record itself is not."""
    return isinstance(error, KafkaError) and not isinstance(
        error, (MessageSizeTooLargeError, RecordTooLargeError)
    )

