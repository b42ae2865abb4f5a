"""Commits past transaction markers: the fetched end of a partition, and the aiokafka state it is
read from, pinned."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.consumer.consumer import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher, FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.types import TP

from worker.kafka.fetched_ends import FetchedEnds, fetch_position

P0, P1 = TP("events", 0), TP("events", 1)


def test_the_end_counts_only_once_everything_delivered_is_settled() -> None:
    ends = FetchedEnds()
    ends.fetching({P0: ["records"]}, {P0: 10})
    assert ends.commit_offset(P0, 7, 8) == 7  # records fetched, not yet all delivered
    ends.delivered(P0, 10)
    assert ends.commit_offset(P0, 7, 8) == 7  # delivered up to 8, settled up to 7
    assert ends.commit_offset(P0, 8, 8) == 10  # all settled: past the markers at 8 and 9
    assert ends.commit_offset(P0, None, 8) is None  # nothing settled in this generation
    assert ends.commit_offset(P1, 3, 3) == 3  # a partition never fetched: as settled


def test_a_fetch_of_a_partition_waits_for_its_delivery_others_move_on() -> None:
    ends = FetchedEnds()
    ends.delivered(P0, 5)
    ends.delivered(P1, 5)
    ends.fetching({P0: ["records"]}, {P0: 9, P1: 6})  # P1: a marker passed, no record
    assert P0 not in ends and ends.commit_offset(P1, 5, 5) == 6
    ends.forget(P1)
    assert ends.commit_offset(P1, 5, 5) == 5
    ends.delivered(P0, 9)
    ends.forget()
    assert ends.known() == []


async def test_fetch_position_reads_the_consumers_subscription_state() -> None:
    subscriptions = SubscriptionState()
    tp = TopicPartition("events", 0)
    subscriptions.assign_from_user({tp})
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
    assert fetch_position(consumer, P0) is None  # no position yet (being reset)
    subscriptions.subscription.assignment.state_value(tp).seek(5)
    assert fetch_position(consumer, P0) == 5
    subscriptions.subscription.assignment.state_value(tp).consumed_to(8)
    assert fetch_position(consumer, P0) == 8
    assert fetch_position(None, P0) is None and fetch_position(consumer, P1) is None


def test_aiokafka_moves_the_position_past_control_batches_and_keeps_it_where_read() -> None:
    # What the fetched end relies on: the consumer's Fetcher holds the subscription state
    # (`_subscriptions`), a PartitionRecords skips control batches (transaction markers) and
    # aborted batches by moving `next_fetch_offset` past them, and the position becomes it.
    assert "self._subscription," in inspect.getsource(AIOKafkaConsumer.start)
    assert "self._subscriptions = subscriptions" in inspect.getsource(Fetcher.__init__)
    unpack = inspect.getsource(PartitionRecords._unpack_records)
    assert "if next_batch.is_control_batch:" in unpack
    assert unpack.count("self.next_fetch_offset = next_batch.next_offset") >= 2
    assert "consumed_to(self._partition_records.next_fetch_offset)" in inspect.getsource(
        FetchResult._update_position)
