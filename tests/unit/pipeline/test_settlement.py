"""Issue 15's settlement scenarios at the pipeline and sink contract: no path may lose,
double-count or wedge a record. The Elasticsearch client is scripted; everything else is real."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError

from tests.unit.sinks.elasticsearch.test_sink import _api_error, _items
from worker.config import load_settings
from worker.deadletters.publisher import DeadLetterPublisher
from worker.events.records import DeadLetter, KafkaPosition, SourceRecord
from worker.pipeline.wiring import Pipeline
from worker.sinks.base import Sink
from worker.sinks.elasticsearch.sink import ElasticsearchSink

PARTITION = ("events", 0)


def _record(offset: int, **fields: Any) -> SourceRecord:
    event = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": f"m-{offset}",
             **fields}
    return SourceRecord(None, orjson.dumps(event), KafkaPosition("events", 0, offset),
                        1_795_000_000_000)


class DeadLetters:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.letters: list[DeadLetter] = []
        self.fail_with = fail_with

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, letter: DeadLetter) -> None:
        if self.fail_with:
            raise self.fail_with
        self.letters.append(letter)


class BulkClient:
    """Answers `_bulk` with `answer(ids, call_number)`; may hang until `released` is set."""

    def __init__(self, answer: Callable[[list[str], int], Any] | None = None) -> None:
        self.answer = answer or (lambda ids, n: _items(ids))
        self.calls: list[list[str]] = []
        self.released = asyncio.Event()
        self.released.set()

    async def bulk(self, operations: bytes, filter_path: str) -> Any:
        lines = operations.splitlines()
        ids = [next(iter(orjson.loads(a).values()))["_id"] for a in lines[::2]]
        self.calls.append(ids)
        call = len(self.calls)
        await self.released.wait()
        return SimpleNamespace(body=self.answer(ids, call))

    async def info(self) -> dict:
        return {}

    async def close(self) -> None: ...


def _pipeline(client: BulkClient, dead_letters: DeadLetters | None = None,
              **overrides: Any) -> tuple[Pipeline, ElasticsearchSink, list[int], list[Any]]:
    settings = load_settings(elasticsearch_retry_initial=0.001, elasticsearch_retry_max=0.002,
                             max_in_flight_records=1000, **overrides)
    pipeline = Pipeline(settings, dead_letters or DeadLetters(), {}.get)  # type: ignore[arg-type]
    sink = pipeline.add_sink(lambda outcomes: ElasticsearchSink(outcomes, settings))
    sink._client = client  # type: ignore[attr-defined,assignment]  # the scripted server
    recovered: list[Any] = []
    pipeline.recover = recovered.append
    pipeline.assign([PARTITION])
    return pipeline, sink, [], recovered  # type: ignore[return-value]


async def test_a_drain_timeout_does_not_wedge_the_worker() -> None:
    """Issue 15 (1): a bulk call that hangs, a drain that times out, a revocation: the agent
    waiting for room wakes up, and the partition's next assignment flows normally."""
    client = BulkClient()
    client.released.clear()  # Elasticsearch hangs
    pipeline, sink, acked, _ = _pipeline(
        client, elasticsearch_batch_max_events=5, elasticsearch_max_in_flight_requests=1)

    async def agent(offsets: range) -> None:
        for offset in offsets:
            await pipeline.submit(_record(offset), lambda o=offset: acked.append(o))

    consuming = asyncio.create_task(agent(range(25)))
    await asyncio.sleep(0.1)
    assert not consuming.done()  # waiting for room: 10 documents buffered or in flight
    assert await pipeline.drain(0.3) is False
    await pipeline.forget([PARTITION])
    await asyncio.wait_for(consuming, 2)  # woken: the rest belongs to the next owner
    client.released.set()  # Elasticsearch recovers

    pipeline.assign([PARTITION])
    await asyncio.wait_for(agent(range(25, 30)), 2)
    assert await pipeline.drain(2) is True
    assert acked == [25, 26, 27, 28, 29] and pipeline.acks.in_flight == 0


async def test_an_elasticsearch_retry_after_a_split_settles_each_event_once() -> None:
    """Issue 15 (3): a 400 splits the batch; one half is answered with too few items and
    retried. Only that half is sent again: c and d are not reported twice."""
    def answer(ids: list[str], call: int) -> Any:
        if call == 1:
            raise _api_error(400)
        if call == 2:
            return _items(ids[:1])  # one answer for two documents: the request is retried
        return _items(ids)

    client = BulkClient(answer)
    settings = load_settings(elasticsearch_retry_initial=0.001, elasticsearch_retry_max=0.002)
    reports: Counter[str] = Counter()
    listener = SimpleNamespace(
        delivered=lambda sink, events: reports.update(e.event_id for e in events),
        failed=None, lost=None)
    sink = ElasticsearchSink(listener, settings)  # type: ignore[arg-type]
    sink._client = client  # type: ignore[assignment]
    from tests.unit.sinks.elasticsearch.test_sink import _event
    await sink.write([_event(name) for name in "abcd"])
    await sink.flush()
    assert reports == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert sorted(map(tuple, client.calls)) == sorted(
        [("a", "b", "c", "d"), ("a", "b"), ("c", "d"), ("a", "b")])


async def test_outcomes_are_settled_once_per_event_and_sink() -> None:
    """A sink that reports an event twice cannot release its record before the other sink."""
    pipeline, es, acked, _ = _pipeline(BulkClient())

    class Twice(Sink):
        name = "twice"

        async def write(self, events: Any) -> None:
            self.outcomes.delivered(self.name, events)
            self.outcomes.delivered(self.name, events)

        async def flush(self) -> None: ...

    pipeline.add_sink(Twice)
    await pipeline.submit(_record(0), lambda: acked.append(0))
    assert acked == []  # Elasticsearch has not answered yet
    assert pipeline.acks.duplicate_settlements == 1
    await es.flush()
    assert acked == [0]


async def test_a_sink_error_recovers_the_partition_instead_of_stalling_it() -> None:
    """Issue 15 (4): an exception out of a sink's write neither escapes to the agent nor leaves
    the record unsettled without anyone noticing: the partition is consumed again."""
    pipeline, _, acked, recovered = _pipeline(BulkClient())

    class Broken(Sink):
        name = "broken"

        async def write(self, events: Any) -> None:
            raise RuntimeError("a bug")

        async def flush(self) -> None: ...

    pipeline.add_sink(Broken)
    await pipeline.submit(_record(0), lambda: acked.append(0))
    assert recovered == [PARTITION] and acked == []


async def test_a_dead_letter_that_cannot_be_written_recovers_the_partition() -> None:
    """Issue 15 (6): a non-Kafka error from the dead-letter publisher does not escape."""
    pipeline, _, acked, recovered = _pipeline(BulkClient(), DeadLetters(ValueError("boom")))
    bad = SourceRecord(None, b"{not json", KafkaPosition("events", 0, 0))
    await pipeline.submit(bad, lambda: acked.append(0))
    assert recovered == [PARTITION] and acked == []


async def test_a_dead_letter_refused_twice_as_too_large_is_written_without_its_value() -> None:
    """Issue 15 (6): the truncated resend is refused too; the last resort keeps the headers."""
    publisher = DeadLetterPublisher(load_settings())
    sent: list[tuple[bytes | None, bytes | None, dict]] = []

    class Producer:
        async def send(self, topic: str, key: bytes | None, value: bytes | None,
                       headers: list) -> Any:
            if value and len(value) > 10:
                raise MessageSizeTooLargeError()
            sent.append((key, value, dict(headers)))
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    publisher._producer = Producer()  # type: ignore[assignment]
    record = SourceRecord(b"k" * 20, b"v" * 2_000_000, KafkaPosition("events", 0, 9))
    await publisher.publish(DeadLetter(record, "decode", "RecordTooLarge", "too big", False))
    ((key, value, headers),) = sent
    assert value == b"" and headers["sluice.value_truncated"] == b"true"
    assert headers["sluice.value_size"] == b"2000000"


@pytest.mark.parametrize("stage", ["elasticsearch"])
async def test_events_of_a_revoked_partition_are_not_written(stage: str) -> None:
    """Issue 15 (2), Elasticsearch side: work of a revoked generation is dropped at every step."""
    client = BulkClient()
    pipeline, sink, acked, _ = _pipeline(client)
    await pipeline.submit(_record(0), lambda: acked.append(0))
    await pipeline.forget([PARTITION])
    await pipeline.submit(_record(1), lambda: acked.append(1))  # a late record: not ours now
    await sink.flush()
    assert client.calls == [] and acked == []


def test_a_contested_partition_is_recovered_and_the_group_rejoined_once_a_session() -> None:
    # Another worker holds a partition the group assigned here (a broker gave a restarted
    # static member someone else's partitions): consume it again, and rejoin the group so that
    # it rebalances; more conflicts within a session timeout ask for no second rejoin.
    pipeline, _, _, recovered = _pipeline(BulkClient(), session_timeout=30.0)
    rejoins: list[int] = []
    pipeline.regroup = lambda: rejoins.append(1)
    pipeline.contested("s3", PARTITION, "another worker claimed it")
    assert recovered == [PARTITION] and rejoins == [1] and pipeline.regroups == 1
    pipeline.recovered([PARTITION])
    pipeline.contested("s3", PARTITION, "another worker claimed it")
    assert recovered == [PARTITION, PARTITION] and rejoins == [1]


def test_a_contested_partition_no_longer_assigned_is_left_alone() -> None:
    # The ordinary rebalance: the old owner sees the new owner's claim after its revocation.
    pipeline, _, _, recovered = _pipeline(BulkClient())
    rejoins: list[int] = []
    pipeline.regroup = lambda: rejoins.append(1)
    pipeline.acks.forget([PARTITION])
    pipeline.contested("s3", PARTITION, "another worker claimed it")
    assert recovered == [] and rejoins == [] and pipeline.regroups == 0
