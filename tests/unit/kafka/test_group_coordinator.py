"""The group coordinator patches (``worker.kafka.group_coordinator``), on stand-ins for the parts of
aiokafka's GroupCoordinator they touch, and the aiokafka internals they rely on, pinned."""

import asyncio
import inspect
from types import MethodType

import pytest
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.errors import IllegalGenerationError
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import JoinGroupRequest
from aiokafka.structs import TopicPartition

from worker.kafka.group_coordinator import (
    EMPTY_ASSIGNMENT,
    accept_empty_assignments,
    keep_member_id_on_commit_errors,
)


class _Coordinator:
    """The parts of aiokafka's GroupCoordinator the member-id patch touches; the reset itself is
    aiokafka's own method."""

    def __init__(self, commit_error: type[Exception]) -> None:
        self.generation = 7
        self.member_id = "sluice-1"
        self.rejoins = 0
        self.commit_error = commit_error
        self.reset_generation = MethodType(GroupCoordinator.reset_generation, self)

    def request_rejoin(self) -> None:
        self.rejoins += 1

    async def _do_commit_offsets(self, assignment: object, offsets: object) -> None:
        # What aiokafka does with a commit answered ILLEGAL_GENERATION: reset, then raise.
        self.reset_generation()
        raise self.commit_error()


async def test_a_commit_answered_illegal_generation_rejoins_as_the_same_member() -> None:
    coordinator = _Coordinator(IllegalGenerationError)
    keep_member_id_on_commit_errors(coordinator)
    with pytest.raises(IllegalGenerationError):
        await coordinator._do_commit_offsets(None, {})
    assert coordinator.member_id == "sluice-1"
    assert coordinator.generation == OffsetCommitRequest.DEFAULT_GENERATION_ID
    assert coordinator.rejoins == 1


async def test_outside_commits_an_unknown_member_still_forgets_its_id() -> None:
    coordinator = _Coordinator(IllegalGenerationError)
    keep_member_id_on_commit_errors(coordinator)
    with pytest.raises(IllegalGenerationError):
        await coordinator._do_commit_offsets(None, {})  # inline, as autocommit awaits it
    coordinator.reset_generation()  # e.g. a JoinGroup answered UNKNOWN_MEMBER_ID afterwards
    assert coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID
    assert coordinator.rejoins == 2


async def test_a_reset_in_another_task_during_a_commit_forgets_the_id() -> None:
    commit_started = asyncio.Event()
    release_commit = asyncio.Event()

    async def slow_commit(assignment: object, offsets: object) -> None:
        commit_started.set()
        await release_commit.wait()

    # A slow commit, so the heartbeat's reset happens while it is in flight.
    coordinator = _Coordinator(IllegalGenerationError)
    coordinator._do_commit_offsets = slow_commit  # type: ignore[method-assign]
    keep_member_id_on_commit_errors(coordinator)
    commit = asyncio.create_task(coordinator._do_commit_offsets(None, {}))
    await commit_started.wait()
    coordinator.reset_generation()  # a heartbeat answered UNKNOWN_MEMBER_ID, in its own task
    release_commit.set()
    await commit
    assert coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID


class _JoiningCoordinator:
    """The parts of aiokafka's GroupCoordinator the empty-assignment patch touches: its
    ``_on_join_complete`` decodes the assignment as aiokafka's does."""

    def __init__(self) -> None:
        self.group_id = "sluice"
        self.rejoins = 0
        self.assigned: list[list[TopicPartition]] = []

    def request_rejoin(self) -> None:
        self.rejoins += 1

    async def _on_join_complete(self, generation: int, member_id: str, protocol: str,
                                member_assignment_bytes: bytes) -> None:
        assignment = ConsumerProtocol.ASSIGNMENT.decode(member_assignment_bytes)
        self.assigned.append(assignment.partitions())


async def test_an_empty_assignment_assigns_nothing_and_asks_for_another_rebalance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coordinator = _JoiningCoordinator()
    accept_empty_assignments(coordinator)
    await coordinator._on_join_complete(4, "worker-1-abc", "roundrobin", b"")
    assert coordinator.assigned == [[]]
    assert coordinator.rejoins == 1
    assert "worker-1-abc an empty assignment" in caplog.text


async def test_an_assignment_with_content_passes_through_untouched() -> None:
    coordinator = _JoiningCoordinator()
    accept_empty_assignments(coordinator)
    nothing = ConsumerProtocol.ASSIGNMENT(0, [], b"").encode()
    two = ConsumerProtocol.ASSIGNMENT(0, [("events", [0, 3])], b"").encode()
    await coordinator._on_join_complete(4, "m", "roundrobin", nothing)
    await coordinator._on_join_complete(5, "m", "roundrobin", two)
    assert coordinator.assigned == [[], [TopicPartition("events", 0), TopicPartition("events", 3)]]
    assert coordinator.rejoins == 0


def test_aiokafka_cannot_decode_an_empty_assignment_but_decodes_ours() -> None:
    # Why the patch exists: if aiokafka learns to read zero bytes, it can go.
    with pytest.raises(ValueError):
        ConsumerProtocol.ASSIGNMENT.decode(b"")
    assert ConsumerProtocol.ASSIGNMENT.decode(EMPTY_ASSIGNMENT).partitions() == []


def test_aiokafka_calls_the_patched_methods_through_the_instance() -> None:
    # The patches replace attributes of one coordinator: aiokafka must look them up on it.
    rejoin = inspect.getsource(GroupCoordinator._do_rejoin_group)
    assert "await self._on_join_complete(" in rejoin
    assert "self.generation, self.member_id, protocol, member_assignment_bytes" in rejoin
    autocommit = inspect.getsource(GroupCoordinator._maybe_do_autocommit)
    assert "self._do_commit_offsets(" in autocommit


def test_a_rejoin_requested_after_the_join_survives_until_the_next_loop() -> None:
    # aiokafka renews its "rejoin needed" future before SyncGroup, not after the join completes,
    # so the request made at the end of `_on_join_complete` starts another rebalance.
    sync = inspect.getsource(CoordinatorGroupRebalance._send_sync_group_request)
    assert "self._coordinator._rejoin_needed_fut = create_future()" in sync
    assert "self._rejoin_needed_fut.done()" in inspect.getsource(GroupCoordinator.need_rejoin)
