import asyncio

from worker.acks import AckTracker
from worker.records import KafkaPosition


def _open(tracker: AckTracker, partition: int, offset: int, shares: int, acked: list[int]):
    key = ("events", partition)
    return tracker.open(
        KafkaPosition("events", partition, offset), shares, lambda: acked.append(offset),
        tracker.generation(key),
    )


def test_acks_are_released_in_consumption_order_whatever_the_settle_order() -> None:
    tracker, acked = AckTracker(100), []
    tickets = [_open(tracker, 0, offset, 2, acked) for offset in range(4)]
    tickets[2].settle(2)
    tickets[1].settle()
    assert acked == []  # offset 0 is still open: nothing past it may be acknowledged
    tickets[0].settle(2)
    assert acked == [0]
    tickets[1].settle()
    assert acked == [0, 1, 2]
    tickets[3].settle(2)
    assert acked == [0, 1, 2, 3]
    assert tracker.in_flight == 0


def test_partitions_are_independent() -> None:
    tracker, acked = AckTracker(100), []
    slow = _open(tracker, 0, 10, 1, acked)
    _open(tracker, 1, 20, 1, acked).settle()
    assert acked == [20]
    slow.settle()
    assert acked == [20, 10]


def test_record_with_no_work_is_acknowledged_at_once_in_order() -> None:
    tracker, acked = AckTracker(100), []
    first = _open(tracker, 0, 1, 1, acked)
    _open(tracker, 0, 2, 0, acked)
    assert acked == []
    first.settle()
    assert acked == [1, 2]


def test_forgotten_partition_is_never_acknowledged_and_stale_records_are_refused() -> None:
    tracker, acked = AckTracker(100), []
    key = ("events", 0)
    old_generation = tracker.generation(key)
    ticket = _open(tracker, 0, 5, 1, acked)
    assert tracker.forget([key]) == 1
    ticket.settle()
    assert acked == [] and tracker.in_flight == 0
    stale = tracker.open(KafkaPosition("events", 0, 6), 1, lambda: acked.append(6), old_generation)
    assert stale is None


async def test_reserve_waits_while_the_in_flight_bound_is_reached() -> None:
    tracker, acked = AckTracker(2), []
    first = _open(tracker, 0, 0, 1, acked)
    _open(tracker, 0, 1, 1, acked)
    waiter = asyncio.create_task(tracker.reserve())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    first.settle()
    await asyncio.wait_for(waiter, 1)
    assert tracker.in_flight == 1


async def test_wait_idle_returns_once_everything_is_acknowledged() -> None:
    tracker, acked = AckTracker(10), []
    ticket = _open(tracker, 0, 0, 1, acked)
    idle = asyncio.create_task(tracker.wait_idle())
    await asyncio.sleep(0.01)
    assert not idle.done()
    ticket.settle()
    await asyncio.wait_for(idle, 1)
