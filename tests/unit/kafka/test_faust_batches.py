"""The batch consumer's drain loop and commits, on a real (unstarted) Faust consumer whose fetches
are scripted: what is delivered, in which pieces, what is dropped, and what is committed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from worker.events.records import KafkaPosition, SourceRecord
from worker.kafka.faust_batch_agent import AgentRoute
from worker.kafka.faust_batches import BatchConsumer
from worker.kafka.record_batches import (
    BatchesNotAttached,
    DirectRoute,
    RecordBatch,
    source_records,
)

TOPIC = "events"
P0, P1 = TP(TOPIC, 0), TP(TOPIC, 1)


class _Transport(aiokafka_driver.Transport):
    Consumer = BatchConsumer


class _App(faust.App):
    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def record(tp: TP, offset: int, value: bytes = b"v", **fields: Any) -> ConsumerRecord:
    base = dict(topic=tp.topic, partition=tp.partition, offset=offset, timestamp=1_700_000_000_000,
                timestamp_type=0, key=b"k", value=value, checksum=None, serialized_key_size=1,
                serialized_value_size=len(value), headers=[])
    base.update(fields)
    return ConsumerRecord(**base)


def records(tp: TP, first: int, last: int) -> list[ConsumerRecord]:
    return [record(tp, offset) for offset in range(first, last + 1)]


class _Fetcher:
    def __init__(self) -> None:
        self._stopped = asyncio.Event()


class Harness:
    """A BatchConsumer whose fetches come from a script; each fetch may run a hook first."""

    def __init__(self, cap: int = 500, assigned: tuple[TP, ...] = (P0, P1)) -> None:
        self.app = _App(f"t-{id(self)}", broker="kafka://127.0.0.1:1", store="memory://",
                        web_enabled=False)
        self.consumer: BatchConsumer = self.app.consumer
        self.delivered: list[tuple[TP, list[int]]] = []
        self.settled: dict[TP, int] = {}
        self.on_batch: Callable[[TP, list[SourceRecord]], Any] | None = None
        self.consumer.attach([TOPIC], DirectRoute(self.handle), self.settled.get,
                             max_records_per_partition=cap)
        self.consumer._set_active_tps(set(assigned))
        self.consumer.assignment = lambda: set(assigned)  # type: ignore[method-assign]
        self.consumer.highwater = lambda tp: 10_000  # type: ignore[method-assign]
        # The aiokafka consumer's positions after a fetch (past transaction markers).
        self.positions: dict[TP, int] = {}
        self.consumer._position = self.positions.get  # type: ignore[method-assign]
        self.script: list[tuple[Callable[[], Any] | None, dict[TP, list[ConsumerRecord]]]] = []
        self.consumer._wait_next_records = self._next  # type: ignore[method-assign]
        self.seeks: list[dict[TP, int]] = []
        self.log: list[str] = []  # fetches and seeks, in order

        async def seek_wait(partitions: dict[TP, int]) -> None:
            self.seeks.append(dict(partitions))
            self.log.append(f"seek {sorted((tp.partition, o) for tp, o in partitions.items())}")

        async def seek_to_committed() -> dict[TP, int]:
            self.log.append("seek to committed")
            return {tp: self.settled.get(tp, 0) for tp in assigned}

        self.consumer.seek_wait = seek_wait  # type: ignore[method-assign]
        self.consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]

    async def handle(self, tp: TP, batch: list[SourceRecord]) -> None:
        self.delivered.append((tp, [r.position.offset for r in batch]))
        if self.on_batch:
            await self.on_batch(tp, batch)

    def fetch(self, batch: dict[TP, list[ConsumerRecord]], before: Callable[[], Any] | None = None
              ) -> None:
        self.script.append((before, batch))

    async def _next(self, timeout: float) -> tuple[dict | None, set[TP] | None]:
        if not self.script:
            self.consumer._stopped.set()
            return None, None
        before, batch = self.script.pop(0)
        self.log.append("fetch starts")
        if before is not None:
            result = before()
            if asyncio.iscoroutine(result):
                await result
        self.log.append("fetch returns")
        return batch, set(self.consumer._get_active_partitions())

    async def run(self) -> None:
        await asyncio.wait_for(self.consumer._drain_messages(_Fetcher()), 5)


async def test_each_fetch_is_delivered_per_partition_in_order() -> None:
    h = Harness()
    h.fetch({P0: records(P0, 0, 2), P1: records(P1, 0, 1)})
    h.fetch({P0: records(P0, 3, 4)})
    await h.run()
    assert h.delivered == [(P0, [0, 1, 2]), (P1, [0, 1]), (P0, [3, 4])]


async def test_fairness_cap_takes_partitions_in_turn() -> None:
    h = Harness(cap=2)
    h.fetch({P0: records(P0, 0, 4), P1: records(P1, 10, 12)})
    await h.run()
    assert h.delivered == [(P0, [0, 1]), (P1, [10, 11]), (P0, [2, 3]), (P1, [12]), (P0, [4])]


async def test_records_below_the_read_offset_are_dropped() -> None:
    h = Harness()
    h.consumer._read_offset[P0] = 5  # as after a seek to offset 5
    h.fetch({P0: records(P0, 3, 7)})
    h.fetch({P1: records(P1, 0, 0)})
    await h.run()
    assert h.delivered == [(P0, [5, 6, 7]), (P1, [0])]
    assert h.consumer._read_offset[P0] == 8


async def test_nothing_is_delivered_while_the_flow_is_stopped_and_it_seeks_back() -> None:
    h = Harness()
    h.settled[P0] = 2
    h.fetch({P0: records(P0, 2, 4)}, before=h.consumer.stop_flow)
    await h.run()
    assert h.delivered == []
    # Faust's rule: a fetch while the flow is stopped seeks back to the committed offsets.
    assert h.consumer._read_offset[P0] == 2


async def test_flow_stopped_by_a_handler_stops_the_rest_of_the_fetch() -> None:
    h = Harness(cap=1)

    async def stop_flow(tp: TP, batch: list[SourceRecord]) -> None:
        h.consumer.stop_flow()

    h.on_batch = stop_flow
    h.fetch({P0: records(P0, 0, 2), P1: records(P1, 0, 2)})
    await h.run()
    assert h.delivered == [(P0, [0])]


async def test_handler_waiting_when_the_flow_is_suspended_is_cancelled() -> None:
    h = Harness()
    cancelled = asyncio.Event()

    async def wait_forever(tp: TP, batch: list[SourceRecord]) -> None:
        asyncio.get_running_loop().call_later(0.05, h.consumer.stop_flow)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    h.on_batch = wait_forever
    h.fetch({P0: records(P0, 0, 1), P1: records(P1, 0, 1)})
    await h.run()
    assert cancelled.is_set()
    assert h.delivered == [(P0, [0, 1])]


async def test_generation_change_stops_the_rest_of_the_fetch() -> None:
    h = Harness(cap=1)

    async def rebalance(tp: TP, batch: list[SourceRecord]) -> None:
        h.app.consumer_generation_id += 1

    h.on_batch = rebalance
    h.fetch({P0: records(P0, 0, 2)})
    await h.run()
    assert h.delivered == [(P0, [0])]


async def test_revoked_or_paused_partitions_are_not_delivered() -> None:
    h = Harness()
    h.fetch({P0: records(P0, 0, 1), P1: records(P1, 0, 1)},
            before=lambda: h.consumer.pause_partitions({P1}))
    await h.run()
    assert h.delivered == [(P0, [0, 1])]


async def test_rewind_from_the_handler_drops_the_stale_rest_and_redelivers() -> None:
    h = Harness(cap=2)
    rewound = False

    async def rewind_once(tp: TP, batch: list[SourceRecord]) -> None:
        nonlocal rewound
        if tp == P0 and not rewound:
            rewound = True
            await h.consumer.rewind(P0, 1)

    h.on_batch = rewind_once
    h.fetch({P0: records(P0, 0, 5), P1: records(P1, 0, 3)})
    # What the broker sends after the seek: from offset 1 again.
    h.fetch({P0: records(P0, 1, 2)})
    await h.run()
    assert h.seeks == [{P0: 1}]
    assert h.delivered == [(P0, [0, 1]), (P1, [0, 1]), (P1, [2, 3]), (P0, [1, 2])]


async def test_fetch_that_overlaps_a_rewind_is_dropped() -> None:
    h = Harness()
    # The rewind lands while the fetch is in flight: its records predate the seek.
    h.fetch({P0: records(P0, 7, 9), P1: records(P1, 0, 0)},
            before=lambda: h.consumer.rewind(P0, 3))
    h.fetch({P0: records(P0, 3, 4)})
    await h.run()
    assert h.delivered == [(P1, [0]), (P0, [3, 4])]
    # The seek comes after the fetch returned, never during it: whatever that fetch took from
    # partition 0 is fetched again from offset 3.
    assert h.log[:4] == ["fetch starts", "fetch returns", "seek [(0, 3)]", "fetch starts"]


async def test_rewind_of_a_partition_revoked_meanwhile_is_not_sought() -> None:
    h = Harness()

    async def rewind_then_lose_p1() -> None:
        await h.consumer.rewind(P1, 0)
        h.consumer.assignment = lambda: {P0}  # type: ignore[method-assign]

    h.fetch({P0: records(P0, 0, 0), P1: records(P1, 4, 5)}, before=rewind_then_lose_p1)
    await h.run()
    assert h.seeks == []
    assert h.delivered == [(P0, [0])]


async def test_fetch_that_overlaps_a_seek_to_committed_is_dropped() -> None:
    h = Harness()
    h.fetch({P0: records(P0, 7, 9)}, before=h.consumer.perform_seek)
    await h.run()
    assert h.delivered == []
    # Dropped, so sought again after the fetch: those records are read again from committed.
    assert h.log[:4] == ["fetch starts", "seek to committed", "fetch returns",
                         "seek to committed"]


async def test_commit_offsets_come_from_committable() -> None:
    h = Harness()
    h.consumer._committed_offset[P1] = 4
    h.settled.update({P0: 3, P1: 4})  # P1 has nothing new
    offsets = h.consumer._filter_committable_offsets(h.consumer._filter_tps_with_pending_acks())
    assert offsets == {P0: 3}
    assert set(h.consumer._filter_tps_with_pending_acks({TP("other", 0)})) == set()


async def test_commit_timer_commits_the_settled_offsets() -> None:
    h = Harness()
    h.settled.update({P0: 10, P1: 1})
    committed: list[dict[TP, int]] = []

    async def commit(offsets: dict[TP, int]) -> bool:
        committed.append(dict(offsets))
        return True

    h.consumer._commit = commit  # type: ignore[method-assign]
    h.app.producer.flush = _async_noop  # type: ignore[method-assign]
    await h.consumer.commit()
    assert committed == [{P0: 10, P1: 1}]
    assert h.consumer._committed_offset[P0] == 10
    await h.consumer.commit()
    assert committed == [{P0: 10, P1: 1}]  # nothing new settled: nothing committed


async def test_commit_loop_commits_at_once_when_every_record_is_settled() -> None:
    h = Harness()
    all_settled = asyncio.Event()
    h.consumer.attach([TOPIC], DirectRoute(h.handle), h.settled.get, all_settled=all_settled)
    h.consumer.commit_interval = 3600.0  # the timer alone would not commit during this test
    commits: list[float] = []

    async def commit(*_: Any, **__: Any) -> bool:
        commits.append(asyncio.get_running_loop().time())
        return True

    h.consumer.commit = commit  # type: ignore[method-assign]
    loop = asyncio.create_task(h.consumer._commit_handler.fun(h.consumer))
    try:
        await asyncio.sleep(0.05)
        assert commits == []  # nothing settled yet: the loop waits for its timer
        all_settled.set()
        for _ in range(200):
            if commits:
                break
            await asyncio.sleep(0.01)
        assert len(commits) == 1
        assert not all_settled.is_set()  # consumed by that commit
        await asyncio.sleep(0.2)
        assert len(commits) == 1  # and nothing more until something settles again
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def _async_noop(*_: Any) -> None:
    return None


async def test_the_commit_goes_past_transaction_markers_once_all_fetched_is_settled() -> None:
    # Records 0-2, then the marker of their transaction at 3: the consumer's position is 4.
    h = Harness()
    h.fetch({P0: records(P0, 0, 2)}, before=lambda: h.positions.update({P0: 4}))
    await h.run()
    h.settled[P0] = 2  # record 2 still in a sink: nothing past it
    assert h.consumer._new_offset(P0) == 2
    h.settled[P0] = 3  # all settled: the marker is no record, commit past it
    assert h.consumer._new_offset(P0) == 4


async def test_no_commit_goes_past_fetched_records_that_were_not_delivered() -> None:
    h = Harness(cap=1)

    async def stop_flow(tp: TP, batch: list[SourceRecord]) -> None:
        h.consumer.stop_flow()

    h.on_batch = stop_flow
    h.fetch({P0: records(P0, 0, 2)}, before=lambda: h.positions.update({P0: 4}))
    await h.run()
    assert h.delivered == [(P0, [0])]
    h.settled[P0] = 1  # record 0 settled; 1 and 2 were fetched, never delivered
    assert h.consumer._new_offset(P0) == 1


async def test_a_fetch_of_markers_alone_moves_the_commit_on() -> None:
    h = Harness()
    h.fetch({P0: records(P0, 0, 1)}, before=lambda: h.positions.update({P0: 2}))
    h.fetch({}, before=lambda: h.positions.update({P0: 3}))  # the commit marker came later
    await h.run()
    h.settled[P0] = 2
    assert h.consumer._new_offset(P0) == 3


async def test_a_rewind_or_a_seek_forgets_the_fetched_end() -> None:
    h = Harness()
    h.fetch({P0: records(P0, 0, 1), P1: records(P1, 0, 1)},
            before=lambda: h.positions.update({P0: 3, P1: 3}))
    await h.run()
    h.settled.update({P0: 2, P1: 2})
    await h.consumer.rewind(P0, 0)
    h.consumer._read_offset[P0] = 2  # as if delivered again up to there
    assert h.consumer._new_offset(P0) == 2 and h.consumer._new_offset(P1) == 3
    await h.consumer.perform_seek()
    assert h.consumer._new_offset(P1) == 2


async def test_other_topics_keep_faust_per_message_path() -> None:
    other = TP("other", 0)
    h = Harness(assigned=(P0, other))
    messages: list[tuple[str, int]] = []

    async def callback(message: Any) -> None:
        messages.append((message.topic, message.offset))

    h.consumer.callback = callback
    h.consumer._read_offset[other] = 1  # Faust's rule there too: below it is dropped
    h.fetch({P0: records(P0, 0, 1), other: records(other, 0, 2)})
    await h.run()
    assert h.delivered == [(P0, [0, 1])]
    assert messages == [("other", 1), ("other", 2)]


async def test_starting_without_attach_says_what_to_call() -> None:
    app = _App("t-unattached", broker="kafka://127.0.0.1:1", store="memory://",
               web_enabled=False)
    with pytest.raises(BatchesNotAttached, match="attach"):
        await app.consumer._drain_messages(_Fetcher())


def test_source_records_keep_bytes_position_time_and_headers() -> None:
    raw = [record(P1, 42, b"\x00payload", key=None, timestamp=1_700_000_000_123,
                  headers=[("h", b"1"), ("n", None)]),
           record(P1, 43, timestamp=0)]
    first, second = source_records(raw)
    assert first == SourceRecord(None, b"\x00payload", KafkaPosition(TOPIC, 1, 42),
                                 1_700_000_000_123, (("h", b"1"), ("n", b"")))
    assert second.timestamp_ms is None and second.headers == ()


async def test_agent_route_drops_batches_made_stale_in_the_channel() -> None:
    h = Harness()
    handled: list[RecordBatch] = []

    async def handle(tp: TP, batch: list[SourceRecord]) -> None:
        handled.append(RecordBatch(tp, batch, (0, 0)))

    route = AgentRoute(h.app, handle, name="t-agent")
    fresh = RecordBatch(P0, source_records(records(P0, 0, 1)), h.consumer.stamp(P0))
    await h.consumer.rewind(P1, 0)
    stale = RecordBatch(P1, source_records(records(P1, 5, 6)), (0, 0))

    async def stream() -> Any:
        for batch in (stale, fresh):
            yield batch

    await route._process(stream())  # type: ignore[arg-type]
    assert [b.tp for b in handled] == [P0]
