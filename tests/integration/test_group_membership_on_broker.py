"""Group membership on the real broker: a member the leader leaves out of its plan gets an
empty assignment (zero bytes) from the broker. With ``accept_empty_assignments`` it takes no
partitions, asks for another rebalance, and gets its share; without it aiokafka's coordinator task
died and the member waited for partitions for ever (seen in the SIGKILL chaos test)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from worker.config import Settings
from worker.kafka.connection import client_options
from worker.kafka.group_coordinator import accept_empty_assignments

pytestmark = pytest.mark.integration

PARTITIONS = 4


class _LeaderForgettingOneMember(RoundRobinPartitionAssignor):
    """Round robin, except that the first plan with two members leaves the second one out, as a
    leader does that assigned before a member joined or came back."""

    name = "sluice-test-forgetful"
    left_out: ClassVar[list[str]] = []

    @classmethod
    def assign(cls, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata],
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        plan = super().assign(cluster, members)
        if len(members) > 1 and not cls.left_out:
            first, forgotten = sorted(members)[:2]
            cls.left_out.append(forgotten)
            return super().assign(cluster, {first: members[first]})
        return plan


async def _consumer(settings: Settings, patched: bool) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        group_id=settings.app_id, partition_assignment_strategy=(_LeaderForgettingOneMember,),
        session_timeout_ms=10_000, heartbeat_interval_ms=500, enable_auto_commit=False,
        max_poll_interval_ms=20_000, **client_options(settings))
    # Started without a subscription, so the patch is in place before the first join.
    await consumer.start()
    if patched:
        accept_empty_assignments(consumer._coordinator)
    consumer.subscribe([settings.source_topic])
    return consumer


async def _all_members_own_partitions(consumers: list[AIOKafkaConsumer],
                                      timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [consumer.assignment() for consumer in consumers]
        if all(owned) and sum(map(len, owned)) == PARTITIONS:
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.parametrize("patched", [True, False], ids=["patched", "aiokafka-as-is"])
async def test_a_member_left_out_of_the_plan_gets_its_share_at_the_next_rebalance(
    settings: Settings, patched: bool, caplog: pytest.LogCaptureFixture,
) -> None:
    _LeaderForgettingOneMember.left_out.clear()
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.source_topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    caplog.set_level(logging.WARNING)
    first = await _consumer(settings, patched)
    consumers = [first]
    dead_coordinators: list[str] = []
    try:
        # The first member owns everything before the second one joins.
        assert await _all_members_own_partitions(consumers, 30)
        consumers.append(await _consumer(settings, patched))
        shared = await _all_members_own_partitions(consumers, 30)
    finally:
        for consumer in consumers:
            task = consumer._coordinator._coordination_task
            if task.done() and task.exception() is not None:
                dead_coordinators.append(repr(task.exception()))
            await consumer.stop()
    assert _LeaderForgettingOneMember.left_out, "the leader never left a member out"
    if patched:
        assert shared, "the member left out never got partitions"
        assert "an empty assignment" in caplog.text
        assert dead_coordinators == []
    else:
        # Pins the defect the patch fixes: aiokafka as it is never recovers.
        assert not shared
        assert len(dead_coordinators) == 1
        assert "Unexpected error during coordination" in dead_coordinators[0]
