"""Requests' records in Kafka transactions: 200 means committed, 503 means never visible.

`sluice ingest` answers 503 when the broker has not acknowledged a request's records in time.
Records already on their way cannot be called back: a broker that pauses (a long GC, a stopped
process) appends them when it resumes. So every record is produced inside a transaction, and
the worker reads ``read_committed``: a record is visible only once its transaction commits, and
a transaction that holds records of a request answered 503 is never committed.

``TransactionLoop`` runs one transaction at a time on one transactional producer, as a group
commit: the requests that arrive while a transaction is being committed join the next one
together, so the transactions grow with the load instead of their number.

1. A request waits for an open transaction and puts its records in (``send``).
2. The loop closes the transaction to newcomers, waits for the broker's acknowledgement of its
   records, and commits it. Its requests are answered 200 once the commit is acknowledged.
3. A request whose time (SLUICE_INGEST_PRODUCE_TIMEOUT) runs out before the commit was asked
   *dooms* its transaction: every request in it is answered 503 at once, and the loop aborts
   it. A doomed transaction is never committed, whatever the broker did with its records.
4. A request whose time runs out while the commit is asked waits ``COMMIT_GRACE`` more for its
   answer; without one it gets 504 (``Unconfirmed``): only then may a retry write twice.
5. After an abort the producer is retired (``ProducerLost``): its owner starts a new one with a
   transactional id of its own. A producer id that aborted a transaction never writes again,
   because the local stack's broker (noida-db 0.2.3) keeps listing that abort in every later
   fetch: a read_committed reader past it would skip all the producer's later records.
6. An abort or a commit the broker does not answer means the producer is lost with a
   transaction perhaps open (``ProducerLost(fence=True)``): its owner first starts a producer
   with the lost one's transactional id, which fences it and makes the broker abort what it left
   open, and then writes with a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.ingest.forms import IngestRecord

log = logging.getLogger(__name__)

COMMIT_GRACE = 1.0  # seconds a request waits for the answer to a commit already asked
ABORT_TIMEOUT = 5.0


class Doomed(Exception):
    """The request's transaction will be aborted: nothing of it becomes visible (503)."""


class Unknown(Exception):
    """The broker did not answer the commit of the request's transaction (504)."""


class ProducerLost(Exception):
    """The transactional producer is not to be used again; `fence`: it may have left a
    transaction open, which a producer of the same transactional id must end."""

    def __init__(self, reason: str, fence: bool = True) -> None:
        super().__init__(reason)
        self.fence = fence


class Transaction:
    """The requests that joined one transaction, their records' acknowledgements, its end."""

    def __init__(self) -> None:
        self.open = True  # requests may still join
        self.sending = 0  # requests still putting their records in
        self.all_sent = asyncio.Event()
        self.all_sent.set()
        self.acks: list[asyncio.Future[object]] = []
        self.deadline = math.inf  # the earliest deadline of its requests (loop time)
        self.committing = False  # the commit was asked of the broker: no abort any more
        self.doomed: str | None = None
        # True: committed; False: aborted or doomed; Unknown: the commit was not answered
        self.ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def doom(self, reason: str) -> bool:
        """Make sure the transaction is never committed (False if its commit was asked)."""
        if self.committing:
            return False
        if self.doomed is None:
            self.doomed = reason
        if not self.ended.done():
            self.ended.set_result(False)
        return True

    def end(self, committed: bool | None) -> None:
        if self.ended.done():
            return
        if committed is None:
            self.ended.set_exception(Unknown())
        else:
            self.ended.set_result(committed)


class TransactionLoop:
    """Group commits on one started transactional producer (see the module docstring)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str,
                 on_outcome: Callable[[str], None],
                 on_lost: Callable[[TransactionLoop, ProducerLost], None]) -> None:
        self.producer = producer
        self.topic = topic
        self._on_outcome = on_outcome
        self._on_lost = on_lost
        self._current: Transaction | None = None
        self._wanted = asyncio.Event()  # a request waits for a transaction
        self._opened = asyncio.Event()  # a transaction is open to newcomers
        self._task: asyncio.Task[None] | None = None
        self.lost: str | None = None
        self.aborting = False  # an abort is under way: the broker may be gone

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop after the transaction in progress; an idle loop stops at once."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def busy(self) -> bool:
        return self._current is not None or self._wanted.is_set()

    async def send(self, records: Sequence[IngestRecord], deadline: float) -> None:
        """Put `records` in a transaction and return once it is committed; Doomed if it will
        not be (or there was no transaction to join before `deadline`), Unknown if the broker
        did not answer its commit."""
        transaction = await self._join(deadline)
        transaction.sending += 1
        transaction.all_sent.clear()
        transaction.deadline = min(transaction.deadline, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                for record in records:
                    if transaction.doomed is not None:
                        break
                    transaction.acks.append(await self.producer.send(
                        self.topic, record.value, key=record.key,
                        headers=list(record.headers) or None))
        except (KafkaError, TimeoutError) as error:
            transaction.doom(f"a send failed: {type(error).__name__}: {error}")
        finally:
            transaction.sending -= 1
            if transaction.sending == 0:
                transaction.all_sent.set()
        await self._outcome(transaction, deadline)

    async def _join(self, deadline: float) -> Transaction:
        while self.lost is None:
            if self.aborting:
                # Waiting behind an abort the broker may never answer would only turn this
                # request's quick 503 into a slow one.
                raise Doomed("the broker did not acknowledge earlier records in time")
            current = self._current
            if current is not None and current.open:
                return current
            self._wanted.set()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._opened.wait()
            except TimeoutError:
                raise Doomed("no transaction could be opened in time") from None
        raise Doomed(self.lost)

    async def _outcome(self, transaction: Transaction, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            committed = await asyncio.wait_for(asyncio.shield(transaction.ended),
                                               max(0.0, deadline - loop.time()))
        except TimeoutError:
            if transaction.doom("a request's time ran out before the commit"):
                raise Doomed(transaction.doomed) from None
            try:  # the commit was asked: its answer decides
                committed = await asyncio.wait_for(asyncio.shield(transaction.ended),
                                                   COMMIT_GRACE)
            except TimeoutError:
                raise Unknown() from None
        if not committed:
            raise Doomed(transaction.doomed or "the transaction was aborted")

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                await self._wanted.wait()
                await self._one_transaction()
        except ProducerLost as lost:
            self.lost = str(lost)
            self._opened.set()  # waiting requests see `lost`
            self._on_lost(self, lost)

    async def _one_transaction(self) -> None:
        producer = self.producer
        try:
            await producer.begin_transaction()
        except KafkaError as error:
            raise ProducerLost(f"begin_transaction: {type(error).__name__}: {error}") from None
        transaction = self._current = Transaction()
        self._wanted.clear()
        self._opened.set()
        try:
            await asyncio.sleep(0)  # the requests woken by `_opened` join now
            transaction.open = False
            self._opened.clear()
            await self._wait_for_acks(transaction)
            if transaction.doomed is None and not transaction.ended.done():
                await self._commit(transaction)
            else:
                await self._abort(transaction)
        finally:
            self._current = None
            transaction.doom("the transaction loop stopped")  # a no-op once it ended

    async def _wait_for_acks(self, transaction: Transaction) -> None:
        try:
            async with asyncio.timeout_at(transaction.deadline):
                await transaction.all_sent.wait()
                await asyncio.gather(*transaction.acks)
        except (KafkaError, TimeoutError) as error:
            transaction.doom(f"records not acknowledged: {type(error).__name__}: {error}")
        # Each request's own deadline ends its sending; none may go on into the next
        # transaction, where its records would be committed.
        await transaction.all_sent.wait()

    async def _commit(self, transaction: Transaction) -> None:
        transaction.committing = True
        try:
            async with asyncio.timeout_at(max(transaction.deadline, asyncio.get_running_loop()
                                              .time()) + COMMIT_GRACE):
                await self.producer.commit_transaction()
        except (KafkaError, TimeoutError) as error:
            transaction.end(None)
            self._on_outcome("unconfirmed")
            raise ProducerLost(f"the commit was not answered: {type(error).__name__}: "
                               f"{error}") from None
        transaction.end(True)
        self._on_outcome("committed")

    async def _abort(self, transaction: Transaction) -> None:
        self._on_outcome("aborted")
        log.warning("ingest: aborting a transaction (%s)", transaction.doomed)
        self.aborting = True
        try:
            async with asyncio.timeout(ABORT_TIMEOUT):
                await self.producer.abort_transaction()
        except (KafkaError, TimeoutError) as error:
            raise ProducerLost(f"the abort was not answered: {type(error).__name__}: "
                               f"{error}") from None
        finally:
            self.aborting = False
        raise ProducerLost(f"a transaction was aborted ({transaction.doomed})", fence=False)
