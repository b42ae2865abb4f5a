import asyncio

from worker.events.records import KafkaPosition
from worker.pipeline.acks import AckTracker, RecordTicket

ES, S3 = "elasticsearch", "s3"


def _tracker(max_in_flight: int = 100, partitions: int = 2) -> AckTracker:
    tracker = AckTracker(max_in_flight)
    tracker.assign([("events", p) for p in range(partitions)])
    return tracker


def _open(tracker: AckTracker, partition: int, offset: int, shares: list[tuple[int, str]],
          acked: list[int]) -> RecordTicket:
    ticket = tracker.open(KafkaPosition("events", partition, offset), shares,
                          lambda: acked.append(offset), tracker.generation(("events", partition)))
    assert ticket is not None
    return ticket


def test_acks_are_released_in_consumption_order_whatever_the_settle_order() -> None:
    tracker, acked = _tracker(), []
    tickets = [_open(tracker, 0, offset, [(0, ES), (0, S3)], acked) for offset in range(4)]
    tickets[2].settle((0, ES))
    tickets[2].settle((0, S3))
    tickets[1].settle((0, ES))
    assert acked == []  # offset 0 is still open: nothing past it may be acknowledged
    tickets[0].settle((0, S3))
    tickets[0].settle((0, ES))
    assert acked == [0]
    tickets[1].settle((0, S3))
    assert acked == [0, 1, 2]
    tickets[3].settle((0, ES))
    tickets[3].settle((0, S3))
    assert acked == [0, 1, 2, 3]
    assert tracker.in_flight == 0


def test_a_second_outcome_for_the_same_share_is_ignored_and_counted() -> None:
    # Issue 15 (3): an extra settle released a record before its S3 share.
    tracker, acked = _tracker(), []
    ticket = _open(tracker, 0, 7, [(0, ES), (0, S3), (1, ES), (1, S3)], acked)
    ticket.settle((0, ES))
    ticket.settle((0, ES))
    ticket.settle((1, ES))
    ticket.settle((1, ES))
    ticket.settle((9, ES))  # a share the record never had
    assert acked == [] and ticket.pending == {(0, S3), (1, S3)}
    assert tracker.duplicate_settlements == 3
    ticket.settle((0, S3))
    ticket.settle((1, S3))
    assert acked == [7]


def test_partitions_are_independent() -> None:
    tracker, acked = _tracker(), []
    slow = _open(tracker, 0, 10, [(0, ES)], acked)
    _open(tracker, 1, 20, [(0, ES)], acked).settle((0, ES))
    assert acked == [20]
    slow.settle((0, ES))
    assert acked == [20, 10]


def test_record_with_no_work_is_acknowledged_at_once_in_order() -> None:
    tracker, acked = _tracker(), []
    first = _open(tracker, 0, 1, [(0, ES)], acked)
    _open(tracker, 0, 2, [], acked)
    assert acked == []
    first.settle((0, ES))
    assert acked == [1, 2]


def test_forgotten_partition_is_never_acknowledged_and_stale_records_are_refused() -> None:
    tracker, acked = _tracker(), []
    key = ("events", 0)
    old_generation = tracker.generation(key)
    ticket = _open(tracker, 0, 5, [(0, ES)], acked)
    assert tracker.forget([key]) == 1
    ticket.settle((0, ES))
    assert acked == [] and tracker.in_flight == 0 and tracker.late_settlements == 1
    assert tracker.open(KafkaPosition("events", 0, 6), [(0, ES)], lambda: acked.append(6),
                        old_generation) is None
    # Assigned again: a new generation, and the old one's work stays refused.
    tracker.assign([key])
    assert tracker.generation(key) != old_generation
    assert tracker.open(KafkaPosition("events", 0, 6), [], lambda: acked.append(6),
                        old_generation) is None
    assert acked == []


def test_records_of_partitions_not_assigned_get_no_ticket() -> None:
    tracker = AckTracker(10)
    assert tracker.generation(("events", 3)) is None
    assert tracker.open(KafkaPosition("events", 3, 0), [], lambda: None, None) is None
    assert tracker.in_flight == 0


def test_a_record_delivered_twice_in_one_generation_is_opened_once() -> None:
    tracker, acked = _tracker(), []
    _open(tracker, 0, 4, [(0, ES)], acked)
    again = tracker.open(KafkaPosition("events", 0, 4), [(0, ES)], lambda: acked.append(4),
                         tracker.generation(("events", 0)))
    assert again is None and tracker.in_flight == 1


def test_oldest_unsettled_is_reported_per_partition() -> None:
    tracker, acked = _tracker(), []
    ticket = _open(tracker, 1, 0, [(0, ES)], acked)
    ages = tracker.oldest_unsettled(now=ticket.opened_at + 42)
    assert ages == {("events", 1): 42}
    ticket.settle((0, ES))
    assert tracker.oldest_unsettled() == {}


async def test_reserve_waits_while_the_in_flight_bound_is_reached() -> None:
    tracker, acked = _tracker(2), []
    first = _open(tracker, 0, 0, [(0, ES)], acked)
    _open(tracker, 0, 1, [(0, ES)], acked)
    waiter = asyncio.create_task(tracker.reserve())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    first.settle((0, ES))
    await asyncio.wait_for(waiter, 1)
    assert tracker.in_flight == 1


async def test_wait_idle_returns_once_everything_is_acknowledged() -> None:
    tracker, acked = _tracker(10), []
    ticket = _open(tracker, 0, 0, [(0, ES)], acked)
    idle = asyncio.create_task(tracker.wait_idle())
    await asyncio.sleep(0.01)
    assert not idle.done()
    ticket.settle((0, ES))
    await asyncio.wait_for(idle, 1)


def test_all_settled_is_signalled_when_the_last_record_in_flight_is_acknowledged() -> None:
    tracker, acked = _tracker(10), []
    tracker.all_settled.clear()
    first = _open(tracker, 0, 0, [(0, ES)], acked)
    second = _open(tracker, 1, 0, [(0, ES)], acked)
    first.settle((0, ES))
    assert not tracker.all_settled.is_set()  # partition 1 still has a record in flight
    second.settle((0, ES))
    assert tracker.all_settled.is_set()


def test_all_settled_is_not_signalled_by_a_revocation() -> None:
    tracker, acked = _tracker(10), []
    tracker.all_settled.clear()
    _open(tracker, 0, 0, [(0, ES)], acked)
    tracker.forget([("events", 0)])
    assert tracker.in_flight == 0
    assert not tracker.all_settled.is_set()  # nothing new may be committed


def test_a_sink_settles_a_tickets_events_with_one_mask_and_repeats_are_counted() -> None:
    tracker, acked = _tracker(), []
    ticket = _open(tracker, 0, 3, [(o, ES) for o in range(3)] + [(o, S3) for o in range(3)],
                   acked)
    ticket.settle_many(ES, 0b101)
    assert ticket.pending == {(1, ES), (0, S3), (1, S3), (2, S3)}
    ticket.settle_many(ES, 0b111)  # ordinals 0 and 2 again: counted, 1 settled
    assert tracker.duplicate_settlements == 2 and ticket.is_pending((0, S3))
    assert not ticket.is_pending((1, ES))
    ticket.settle_many(S3, 0b1111)  # ordinal 3 was never a share
    assert tracker.duplicate_settlements == 3 and acked == [3]


def test_shares_may_be_given_as_bitmaps_by_name() -> None:
    tracker, acked = _tracker(), []
    ticket = tracker.open(KafkaPosition("events", 0, 0), {ES: 0b11, "decode": 0}, lambda:
                          acked.append(0), tracker.generation(("events", 0)))
    assert ticket is not None and ticket.pending == {(0, ES), (1, ES)}
    ticket.settle((1, ES))
    ticket.settle((0, ES))
    assert acked == [0]
