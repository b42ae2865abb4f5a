"""The producer behind `sluice ingest`: every record acknowledged by the broker, or a 503.

aiokafka's producer with ``acks="all"`` and idempotence: a retried send is written once, and
records of one key stay in order. A request is answered 200 only when the broker has
acknowledged every one of its records; when it has not within SLUICE_INGEST_PRODUCE_TIMEOUT
(broker down, leader moving, unknown topic), the request gets 503 and Retry-After.

After a failed send the producer is replaced by a new one, connected in the background: a
producer whose batches expired may hold sequence numbers the broker will refuse, and a new
producer id starts clean. Until it is connected, requests are answered 503 at once instead of
each waiting for the timeout. Some records of a request answered 503 may still have reached the
broker; a client's retry then produces them again (Elasticsearch keeps one document per event
id; S3 may keep both, as for any at-least-once producer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.config import Settings
from worker.ingest.errors import Unavailable
from worker.ingest.forms import IngestRecord
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

log = logging.getLogger(__name__)

RECONNECT_INITIAL, RECONNECT_MAX = 0.5, 5.0
STOP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 30.0


class IngestProducer:
    """Sends a request's records and waits for all their acknowledgements."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.problem: str | None = "not connected to the broker yet"
        self.ever_connected = False
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._topics_ensured = False

    @property
    def available(self) -> bool:
        """Whether a connected producer is there to take records."""
        return self._producer is not None

    def start(self) -> None:
        """Connect in the background (requests get 503 until connected)."""
        self._reconnect()

    async def stop(self) -> None:
        """Flush and close: records already sent are delivered or fail their requests."""
        if self._connecting:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def send_all(self, records: Sequence[IngestRecord]) -> None:
        """Return once the broker acknowledged every record; else raise Unavailable."""
        producer = self._producer
        if producer is None:
            raise self._unavailable()
        topic = self.settings.source_topic
        try:
            async with asyncio.timeout(self.settings.ingest_produce_timeout):
                # send() returns once a record is in a batch: records keep the request's order.
                futures = [await producer.send(topic, record.value, key=record.key,
                                               headers=list(record.headers) or None)
                           for record in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as error:
            self._lost(producer, error)
            raise self._unavailable() from None

    def _unavailable(self) -> Unavailable:
        return Unavailable(f"the broker is unavailable ({self.problem}); retry later",
                           {"Retry-After": str(self.settings.ingest_retry_after)})

    def _lost(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        if self._producer is not producer:
            return  # another request already replaced it
        reason = (f"no acknowledgement within {self.settings.ingest_produce_timeout:g}s"
                  if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}")
        log.warning("ingest: sending to %s failed (%s); answering 503 until the broker is back",
                    self.settings.source_topic, reason)
        self.problem = reason
        self._producer = None
        task = asyncio.create_task(self._close(producer))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._reconnect()

    def _reconnect(self) -> None:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        delay = RECONNECT_INITIAL
        while True:
            producer = self._new_producer()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    if not self._topics_ensured:
                        # The worker creates the topics too; a producer must not auto-create
                        # the source topic with one partition before it does.
                        await ensure_topics(self.settings)
                        self._topics_ensured = True
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as error:
                self.problem = f"{type(error).__name__}: {error}"
                await self._close(producer)
                log.warning("ingest: broker %s not reachable (%s); retrying in %.1fs",
                            self.settings.kafka_bootstrap_servers, self.problem, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self._producer, self.problem, self.ever_connected = producer, None, True
            log.info("ingest: producing to %s on %s (acks=all, idempotent)",
                     self.settings.source_topic, self.settings.kafka_bootstrap_servers)
            return

    def _new_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self.settings.ingest_produce_timeout * 1000)
        return AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=max(timeout_ms, 1000),
            max_request_size=2 * self.settings.max_record_bytes + 65536,
        )

    @staticmethod
    async def _close(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), STOP_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as error:
            log.debug("ingest: closing a producer: %s", error)
