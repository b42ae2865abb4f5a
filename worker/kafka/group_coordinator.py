"""aiokafka's group coordinator, patched per consumer where its group membership fails us.

- ``keep_member_id_on_commit_errors``: a commit answered ILLEGAL_GENERATION rejoins under the same
  member id, so the old id does not stay in the group as a leader nobody plays.
- ``accept_empty_assignments``: an assignment of zero bytes is an assignment of nothing, and the
  member asks for another rebalance, instead of a coordinator that dies and a worker that waits
  for partitions for ever.

Each patch wraps one method of one coordinator instance; the aiokafka internals they rely on are
pinned by ``tests/unit/kafka/test_group_coordinator.py``.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.protocol.commit import OffsetCommitRequest

log = logging.getLogger(__name__)

#: What a member's assignment of no partitions looks like when a leader does encode one.
EMPTY_ASSIGNMENT = ConsumerProtocol.ASSIGNMENT(0, [], b"").encode()


def keep_member_id_on_commit_errors(coordinator: Any) -> None:
    """Patch one aiokafka group coordinator: a commit answered ILLEGAL_GENERATION (or
    UNKNOWN_MEMBER_ID) requests a rejoin with the same member id instead of a new one.

    The commit's own task is marked with a context variable, so a heartbeat, JoinGroup or
    SyncGroup error handled concurrently in another task still resets the id as aiokafka
    intends. An id the broker really does not know is answered UNKNOWN_MEMBER_ID at the next
    JoinGroup, and that resets it.
    """
    commit_offsets = coordinator._do_commit_offsets
    reset_generation = coordinator.reset_generation
    in_commit: ContextVar[bool] = ContextVar("sluice_in_offset_commit", default=False)

    async def do_commit_offsets(*args: Any, **kwargs: Any) -> Any:
        # A context variable is per task; reset it, as autocommit awaits this inline.
        token = in_commit.set(True)
        try:
            return await commit_offsets(*args, **kwargs)
        finally:
            in_commit.reset(token)

    def reset_generation_keeping_member_id_in_commits() -> None:
        if in_commit.get():
            coordinator.generation = OffsetCommitRequest.DEFAULT_GENERATION_ID
            coordinator.request_rejoin()
        else:
            reset_generation()

    coordinator._do_commit_offsets = do_commit_offsets
    coordinator.reset_generation = reset_generation_keeping_member_id_in_commits


def accept_empty_assignments(coordinator: Any) -> None:
    """Patch one aiokafka group coordinator: a SyncGroup answer with an empty assignment (zero
    bytes) assigns no partitions and requests a rejoin.

    A broker answers zero bytes to a member the leader left out of its plan: one that joined, or
    came back under its static ``group.instance.id``, while the leader was assigning (seen on the
    local stack's broker when three static members start at once). kafkajs and brod read it as
    an assignment of nothing; aiokafka 0.14 fails to decode it, its coordinator task dies, and
    the worker waits for partitions for ever without a word beyond one traceback. Rejoining at
    once gives the leader the chance to plan with this member; the leader's own
    encoding of "nothing" (a version and an empty list) needs no rejoin and is left alone.
    """
    on_join_complete_as_aiokafka = coordinator._on_join_complete

    async def on_join_complete(generation: int, member_id: str, protocol: str,
                               member_assignment_bytes: bytes) -> Any:
        if member_assignment_bytes:
            return await on_join_complete_as_aiokafka(generation, member_id, protocol,
                                                      member_assignment_bytes)
        log.warning(
            "group %s generation %s: the broker sent member %s an empty assignment (the leader "
            "left it out of its plan); taking no partitions and asking for another rebalance",
            coordinator.group_id, generation, member_id,
        )
        result = await on_join_complete_as_aiokafka(generation, member_id, protocol,
                                                    EMPTY_ASSIGNMENT)
        coordinator.request_rejoin()
        return result

    coordinator._on_join_complete = on_join_complete
