"""The producer behind `sluice ingest`: 200 means committed, 503 means never visible.

aiokafka's transactional producer (``acks="all"``, idempotent): a request's records are produced
in a transaction
(``worker.ingest.transactions``) and the request is answered 200 once the transaction is
committed. When the broker has not acknowledged them within SLUICE_INGEST_PRODUCE_TIMEOUT (broker
down or paused, leader moving, unknown topic), the request gets 503 and Retry-After, and its
transaction is aborted, never committed: the worker reads ``read_committed``, so records of a
request answered 503 never reach Elasticsearch or S3, even those the broker appends later. The
one answer that promises neither is 504 (``Unconfirmed``): the broker stopped answering between
the request's acknowledgements and its commit.

Each producer has a transactional id of its own (``<prefix>-<start time>-<n>``,
SLUICE_INGEST_TRANSACTIONAL_ID_PREFIX) and is retired after an aborted transaction: a new one is
connected in the background. A producer whose abort or commit is not answered may have left a
transaction open: before the new one writes, a producer with the lost one's id is started and
closed, which fences the old one and makes the broker abort what it left open. Until the new one
is connected, requests are answered 503 at once instead of each waiting for the timeout. An
instance killed mid-request leaves its transaction to the broker, which aborts it after
SLUICE_INGEST_TRANSACTION_TIMEOUT (the local stack's broker never does: see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.config import Settings
from worker.ingest.errors import Unavailable, Unconfirmed
from worker.ingest.forms import IngestRecord
from worker.ingest.transactions import Doomed, ProducerLost, TransactionLoop, Unknown
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics

log = logging.getLogger(__name__)

RECONNECT_INITIAL, RECONNECT_MAX = 0.5, 5.0
STOP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 30.0


def transactional_ids(settings: Settings) -> Iterator[str]:
    """The transactional ids of this process's producers, one each: the prefix
    (SLUICE_INGEST_TRANSACTIONAL_ID_PREFIX, else `sluice-ingest-<host name>`), the process's
    start time in milliseconds and a count."""
    prefix = settings.ingest_transactional_id_prefix or f"sluice-ingest-{socket.gethostname()}"
    started = time.time_ns() // 1_000_000
    return (f"{prefix}-{started}-{n}" for n in itertools.count())


class IngestProducer:
    """Sends a request's records in a transaction and waits for its commit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ids = transactional_ids(settings)
        self.transactional_id = next(self._ids)
        self._fence: str | None = None  # the id of a lost producer, to fence before writing
        self.problem: str | None = "not connected to the broker yet"
        self.ever_connected = False
        # Called with "committed", "aborted" or "unconfirmed" per transaction (the metrics).
        self.on_outcome: Callable[[str], None] = lambda outcome: None
        self._transactions: TransactionLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._topics_ensured = False

    @property
    def available(self) -> bool:
        """Whether a connected producer is there to take records."""
        return self._transactions is not None

    def start(self) -> None:
        """Connect in the background (requests get 503 until connected)."""
        self._reconnect()

    async def stop(self) -> None:
        """Stop after the transaction in progress, and close the producer."""
        if self._connecting:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        transactions, self._transactions = self._transactions, None
        if transactions is not None:
            await transactions.stop()
            await self._close(transactions.producer)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def send_all(self, records: Sequence[IngestRecord]) -> None:
        """Return once every record is committed; else Unavailable (503: none of them will be
        visible) or Unconfirmed (504: the commit was not answered)."""
        transactions = self._transactions
        if transactions is None:
            raise self._unavailable()
        deadline = asyncio.get_running_loop().time() + self.settings.ingest_produce_timeout
        try:
            await transactions.send(records, deadline)
        except Doomed as doomed:
            reason = str(doomed) or f"no commit within {self.settings.ingest_produce_timeout:g}s"
            raise self._unavailable(reason) from None
        except Unknown:
            raise Unconfirmed(
                "the broker did not confirm in time whether the events were written; sending "
                "them again may write them twice",
                {"Retry-After": str(self.settings.ingest_retry_after)}) from None

    def _unavailable(self, reason: str | None = None) -> Unavailable:
        return Unavailable(f"the broker is unavailable ({reason or self.problem}); nothing of "
                           "this request was written; retry later",
                           {"Retry-After": str(self.settings.ingest_retry_after)})

    def _lost(self, transactions: TransactionLoop, lost: ProducerLost) -> None:
        if self._transactions is not transactions:
            return
        if lost.fence:
            log.warning("ingest: the producer of %s is lost (%s); answering 503 until the "
                        "broker is back", self.settings.source_topic, lost)
            self._fence = self.transactional_id
        else:
            log.info("ingest: %s; going on with a new producer", lost)
        self.problem = str(lost)
        self.transactional_id = next(self._ids)
        self._transactions = None
        task = asyncio.create_task(self._close(transactions.producer))
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
                    if self._fence is not None:
                        await self._fence_lost(self._fence)
                        self._fence = None
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as error:
                self.problem = f"{type(error).__name__}: {error}"
                await self._close(producer)
                log.warning("ingest: broker %s not reachable (%s); retrying in %.1fs",
                            self.settings.kafka_bootstrap_servers, self.problem, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            transactions = TransactionLoop(producer, self.settings.source_topic,
                                           self.on_outcome, self._lost)
            transactions.start()
            self._transactions, self.problem, self.ever_connected = transactions, None, True
            log.info("ingest: producing to %s on %s (transactions as %s, acks=all)",
                     self.settings.source_topic, self.settings.kafka_bootstrap_servers,
                     self.transactional_id)
            return

    async def _fence_lost(self, lost_id: str) -> None:
        """Start (and close) a producer with a lost producer's id: the broker fences the lost
        one and aborts the transaction it left open. It writes nothing: see the module
        docstring of ``worker.ingest.transactions`` for why an id that aborted never writes."""
        fence = self._new_producer(lost_id)
        try:
            await fence.start()
        finally:
            await self._close(fence)
        log.info("ingest: fenced the lost producer %s (what it left open is aborted)", lost_id)

    def _new_producer(self, transactional_id: str | None = None) -> AIOKafkaProducer:
        timeout_ms = int(self.settings.ingest_produce_timeout * 1000)
        return AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional_id or self.transactional_id,
            transaction_timeout_ms=int(self.settings.ingest_transaction_timeout * 1000),
            # A transaction is a batch already: its records go out at once.
            linger_ms=0,
            request_timeout_ms=max(timeout_ms, 1000),
            max_request_size=2 * self.settings.max_record_bytes + 65536,
        )

    @staticmethod
    async def _close(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), STOP_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as error:
            log.debug("ingest: closing a producer: %s", error)
