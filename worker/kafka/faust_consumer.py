"""Faust's Kafka consumer, adapted: batches, group membership that survives commit errors,
complete seeks, and paced empty fetches.

``SluiceTransport`` is what the app installs; its consumer (``SluiceConsumer``) reads the source
topic in batches (``worker.kafka.faust_batches``) and keeps its group membership through a rebalance
(``RebalanceAwareConsumer``); its consumer thread (``SluiceConsumerThread``) reads
``read_committed``, fixes how the aiokafka consumer finds its place and paces empty fetches
(``worker.kafka.fetch_pacing``). Every
Faust and aiokafka internal used here is pinned by ``tests/unit/kafka/test_faust_contract.py`` or a
test of its own in ``tests/unit/test_app.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from worker.kafka.faust_batches import BatchConsumer
from worker.kafka.fetch_pacing import pace_empty_fetches
from worker.kafka.group_coordinator import (
    accept_empty_assignments,
    keep_member_id_on_commit_errors,
)


class SluiceConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, with two fixes to how its aiokafka consumer finds its place,
    paced empty fetches, and a livelock check that does not crash on a partition being reset.

    - A commit answered ILLEGAL_GENERATION keeps the member id (`keep_member_id_on_commit_errors`).
    - An empty assignment from the broker is an assignment of nothing, followed by a rejoin
      (`accept_empty_assignments`).
    - Seeking to the committed offsets also rewinds partitions that were never committed.
    - A broker that answers empty fetches at once is not asked again at once
      (`worker.kafka.fetch_pacing`): the spin would take the GIL from the pipeline.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        """Faust's aiokafka consumer, reading ``read_committed``.

        `sluice ingest` produces in transactions and aborts the transaction of a request it
        answered 503; only a ``read_committed`` reader leaves such records out. Records of
        producers without transactions are read as before. Faust sets the isolation level only
        for its exactly-once mode; aiokafka reads ``_isolation_level`` when it starts.
        """
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None:
            keep_member_id_on_commit_errors(coordinator)
            accept_empty_assignments(coordinator)
        fetcher = getattr(self._consumer, "_fetcher", None)
        if fetcher is not None:
            pace_empty_fetches(fetcher)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, or to its first record when
        nothing was ever committed for it.

        Faust drops the records it fetched while its flow is stopped (during a rebalance) and
        relies on this seek to read them again. aiokafka only seeks partitions with a committed
        offset above 0, so a partition nobody committed yet (one that a `sluice topics scale`
        just added) kept its advanced position, and the records fetched before the seek were
        never delivered: 20 of 2,745 in the partition growth test. The group's offset reset
        policy is "earliest", so the first record is where such a partition starts anyway.
        """
        return await self.call_thread(self._seek_to_committed_or_beginning)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's livelock check of one partition, skipped while its position is being reset.

        Faust reads the partition's position, expecting None when there is none; aiokafka 0.14
        asserts there is one. A partition waiting for its offset reset has none: just
        assigned, seeked to its beginning (``seek_to_committed`` above), or out of range after
        a broker restart while the broker is still away. The assertion, raised in Faust's
        livelock detector, crashed the worker (seen in the broker-outage test). Nothing is
        slow about such a partition: it waits for the broker.
        """
        state = self._partition_state(tp)
        if state is not None and not state.has_valid_position:
            return None
        try:
            return super().verify_event_path(now, tp)
        except AssertionError:
            # Faust runs this check on the main thread while the consumer thread moves the
            # partition: a reset between the check above and Faust's read is the same case.
            if state is not None and not state.has_valid_position:
                return None
            raise

    def _partition_state(self, tp: TP) -> Any:
        consumer = self._consumer
        subscription = getattr(getattr(getattr(consumer, "_fetcher", None), "_subscriptions",
                                       None), "subscription", None)
        assignment = getattr(subscription, "assignment", None)
        if assignment is None:
            return None
        return assignment.state_value(TopicPartition(tp.topic, tp.partition))

    async def rejoin_group(self) -> None:
        """Leave the current generation: the group rebalances, our partitions are revoked
        (drained, forgotten) and assigned again from their committed offsets."""
        await self.call_thread(self._request_rejoin)

    async def _request_rejoin(self) -> None:
        self._ensure_consumer()._coordinator.request_rejoin()

    async def _seek_to_committed_or_beginning(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        for tp, offset in committed.items():
            if offset == 0:
                consumer.seek(tp, 0)
        never_committed = [tp for tp, offset in committed.items() if offset is None]
        if never_committed:
            await consumer.seek_to_beginning(*never_committed)
        return committed


class RebalanceAwareConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, with a member-keeping coordinator and no periodic commits
    while the group rebalances.

    A commit that reaches a broker in the middle of a rebalance may be answered with
    ILLEGAL_GENERATION (the local stack's broker does); aiokafka then forgets its member id and
    rejoins as a new member, and the old id stays in the group as a leader nobody plays: the
    group hangs (seen for minutes). Nothing is lost by waiting: the offsets are committed by the
    next owner, or by us once the partitions are assigned again.
    """

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return SluiceConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def rejoin_group(self) -> None:
        """See `SluiceConsumerThread.rejoin_group`."""
        await cast(SluiceConsumerThread, self._thread).rejoin_group()

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        app = self.app
        if app.rebalancing and not app.sluice_settings.commit_on_rebalance \
                and not app.should_stop:
            return False
        return await super().commit(*args, **kwargs)


class SluiceConsumer(BatchConsumer, RebalanceAwareConsumer):
    """The source topic read in batches (``worker.kafka.faust_batches``), commits from the
    pipeline's settled offsets, and the rebalance-aware group membership above."""


class SluiceTransport(aiokafka_driver.Transport):
    """The aiokafka transport with Sluice's consumer."""

    Consumer = SluiceConsumer
