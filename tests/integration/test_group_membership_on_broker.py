"""Group membership on the real broker.

- A member the leader leaves out of its plan gets an empty assignment (zero bytes) from the
  broker. With ``accept_empty_assignments`` it takes no partitions, asks for another rebalance,
  and gets its share; without it aiokafka's coordinator task died and the member waited for
  partitions for ever (seen in the SIGKILL chaos test).
- A static member SIGKILLed and started again under its ``group.instance.id`` can be given
  another member's partitions without a rebalance: two members own a partition and another has
  none (seen in the chaos test, where two workers took each other's S3 claims for minutes).
  A rejoin by one of the two owners heals the group; a Sluice worker rejoins when it finds
  another worker's claim on a partition the group assigned to it (``Pipeline.contested``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
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


class _StaticMember:
    """One `tests.support.static_member` process and the assignment it last printed."""

    def __init__(self, settings: Settings, instance: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.static_member",
                 settings.kafka_bootstrap_servers, settings.app_id, settings.source_topic,
                 instance], stdout=out, stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})

    def owned(self) -> list[int]:
        lines = [line for line in self.log.read_text().splitlines() if line.startswith("[")]
        return json.loads(lines[-1]) if lines else []

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no LeaveGroup, as a crashed worker
        self.process.wait()


def _consistent(members: list[_StaticMember]) -> bool:
    owned = [partition for member in members for partition in member.owned()]
    return sorted(owned) == list(range(6)) and all(member.owned() for member in members)


async def _settled(members: list[_StaticMember], timeout: float) -> list[list[int]]:
    """The members' assignments once they have stayed the same for 3 s (or at the timeout)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        owned = [member.owned() for member in members]
        if owned != last:
            last, since = owned, time.monotonic()
        elif all(owned) and time.monotonic() - since >= 3:
            break
        await asyncio.sleep(0.2)
    return [member.owned() for member in members]


@pytest.mark.timeout(300)
async def test_a_rejoin_heals_a_group_that_gave_a_restarted_static_member_the_wrong_partitions(
    settings: Settings, tmp_path: Path,
) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.source_topic, 6, 1)])
    finally:
        await admin.close()
    members = [_StaticMember(settings, f"w{slot}", tmp_path / f"w{slot}-0.log")
               for slot in range(3)]
    try:
        assert await _settled(members, 60) and _consistent(members), \
            [member.owned() for member in members]
        inconsistent = None
        for restart in range(1, 7):
            slot = restart % 3
            members[slot].kill()
            await asyncio.sleep(1.5)  # back within the session timeout, as a StatefulSet pod
            members[slot] = _StaticMember(settings, f"w{slot}", tmp_path / f"w{slot}-{restart}.log")
            owned = await _settled(members, 60)
            if not _consistent(members):
                inconsistent = owned
                break
        if inconsistent is None:
            pytest.skip("the broker kept the group consistent over 6 static restarts")
        flat = [partition for partitions in inconsistent for partition in partitions]
        doubled = next(member for member, partitions in zip(members, inconsistent, strict=True)
                       if any(flat.count(partition) > 1 for partition in partitions))
        doubled.process.send_signal(signal.SIGUSR1)  # what Pipeline.contested has the app do
        healed = await _settled(members, 60)
        assert _consistent(members), f"{inconsistent} after a restart, {healed} after a rejoin"
    finally:
        for member in members:
            member.kill()
