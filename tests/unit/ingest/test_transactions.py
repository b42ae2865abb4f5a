"""Group commits: a request is answered 200 only once its transaction is committed, and a
transaction with a request answered 503 is never committed, whatever the broker does later; a
producer that aborted is retired."""

from __future__ import annotations

import asyncio

import pytest

from worker.ingest import transactions as transactions_module
from worker.ingest.forms import IngestRecord
from worker.ingest.transactions import Doomed, ProducerLost, TransactionLoop, Unknown


class FakeProducer:
    """A transactional producer whose acknowledgements, commits and aborts wait for gates."""

    def __init__(self) -> None:
        self.in_transaction = False
        self.pending: list[bytes] = []
        self.committed: list[bytes] = []
        self.aborted: list[bytes] = []
        self.commits = 0
        self.acks, self.commit_gate, self.abort_gate = (asyncio.Event() for _ in range(3))
        for gate in (self.acks, self.commit_gate, self.abort_gate):
            gate.set()
        self.send_gates: dict[bytes, asyncio.Event] = {}  # a value's send() waits for its gate
        self.headers: dict[bytes, list[tuple[str, bytes]] | None] = {}  # by value

    async def begin_transaction(self) -> None:
        assert not self.in_transaction
        self.in_transaction, self.pending = True, []

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[None]:
        if value in self.send_gates:
            await self.send_gates[value].wait()
        assert self.in_transaction, "a record sent outside a transaction"
        self.pending.append(value)
        self.headers[value] = headers
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def acknowledge() -> None:
            await self.acks.wait()
            ack.set_result(None)

        asyncio.create_task(acknowledge())
        return ack

    async def commit_transaction(self) -> None:
        await self.commit_gate.wait()
        self.committed += self.pending
        self.in_transaction, self.commits = False, self.commits + 1

    async def abort_transaction(self) -> None:
        await self.abort_gate.wait()
        self.aborted += self.pending
        self.in_transaction = False


class Loop:
    """A TransactionLoop on a FakeProducer, with its outcomes and losses recorded."""

    def __init__(self) -> None:
        self.producer = FakeProducer()
        self.outcomes: list[str] = []
        self.lost: list[ProducerLost] = []
        self.loop = TransactionLoop(self.producer, "events", self.outcomes.append,  # type: ignore
                                    lambda _, lost: self.lost.append(lost))
        self.loop.start()

    async def send(self, *values: bytes, seconds: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        await self.loop.send([IngestRecord(None, value) for value in values], deadline)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_concurrent_requests_are_committed_together_and_answered_after_the_commit() -> None:
    loop = Loop()
    await asyncio.gather(*(loop.send(b"r%d-a" % n, b"r%d-b" % n) for n in range(20)))
    assert sorted(loop.producer.committed) == sorted(
        value for n in range(20) for value in (b"r%d-a" % n, b"r%d-b" % n))
    assert 1 <= loop.producer.commits < 20 and loop.outcomes.count("committed") == \
        loop.producer.commits
    await loop.loop.stop()


async def test_records_are_sent_with_the_doors_headers() -> None:
    loop = Loop()
    door = (("ingest.source_id", b"src-web"), ("ingest.received_at", b"2024-05-01T00:00:00Z"))
    deadline = asyncio.get_running_loop().time() + 5
    await loop.loop.send([IngestRecord(b"user-1", b"with", door), IngestRecord(None, b"without")],
                         deadline)
    assert loop.producer.committed == [b"with", b"without"]
    assert loop.producer.headers == {b"with": list(door), b"without": None}
    await loop.loop.stop()


async def test_a_request_out_of_time_before_the_commit_dooms_its_transaction() -> None:
    loop = Loop()
    loop.producer.acks.clear()  # the broker does not acknowledge
    results = await asyncio.gather(loop.send(b"late", seconds=0.1), loop.send(b"other"),
                                   return_exceptions=True)
    assert all(isinstance(result, Doomed) for result in results)  # 503 for both, at once
    await _settle()
    assert loop.producer.committed == [] and sorted(loop.producer.aborted) == [b"late", b"other"]
    loop.producer.acks.set()  # the broker is back: what it acknowledges now stays aborted
    # The producer that aborted is retired without a fence (nothing of it is left open).
    assert [lost.fence for lost in loop.lost] == [False] and loop.outcomes == ["aborted"]
    with pytest.raises(Doomed):
        await loop.send(b"next")
    assert loop.producer.committed == []


async def test_a_request_still_sending_never_sends_after_its_transaction_ended() -> None:
    loop = Loop()
    gate = loop.producer.send_gates[b"slow-2"] = asyncio.Event()
    # Both join one transaction; `quick` gives up while `slow` still waits to send its second.
    slow = asyncio.create_task(loop.send(b"slow-1", b"slow-2", b"slow-3", seconds=5))
    with pytest.raises(Doomed):
        await loop.send(b"quick", seconds=0.05)
    await asyncio.sleep(0.05)
    assert loop.outcomes == []  # the abort waits for `slow` to stop sending
    gate.set()
    with pytest.raises(Doomed):
        await slow  # (the fake producer fails a record sent outside a transaction)
    assert loop.producer.committed == [] and loop.outcomes == ["aborted"]
    assert sorted(loop.producer.aborted) == [b"quick", b"slow-1", b"slow-2"]  # not slow-3


async def test_a_commit_without_an_answer_is_unknown_and_the_producer_is_lost(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions_module, "COMMIT_GRACE", 0.05)
    loop = Loop()
    loop.producer.commit_gate.clear()
    with pytest.raises(Unknown):
        await loop.send(b"maybe", seconds=0.1)
    await _settle()
    assert [lost.fence for lost in loop.lost] == [True] and "commit" in str(loop.lost[0])
    assert loop.outcomes == ["unconfirmed"]
    with pytest.raises(Doomed):
        await loop.send(b"refused at once")


async def test_an_abort_without_an_answer_loses_the_producer_and_later_requests_fail_fast(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transactions_module, "ABORT_TIMEOUT", 0.1)
    loop = Loop()
    loop.producer.acks.clear()
    loop.producer.abort_gate.clear()
    with pytest.raises(Doomed):
        await loop.send(b"a", seconds=0.05)
    with pytest.raises(Doomed):  # behind the abort: at once, not after its own timeout
        await asyncio.wait_for(loop.send(b"b", seconds=5), 1)
    for _ in range(100):
        if loop.lost:
            break
        await asyncio.sleep(0.01)
    assert [lost.fence for lost in loop.lost] == [True] and "abort" in str(loop.lost[0])
    assert loop.producer.committed == []
