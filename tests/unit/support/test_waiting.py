"""Waiting for a condition (tests/support/waiting.py)."""

import pytest

from tests.support.waiting import eventually


async def test_the_first_truthy_value_of_a_plain_or_async_condition_is_returned() -> None:
    values = iter([0, None, 7])
    assert await eventually(lambda: next(values), timeout=60, what="a number", interval=0) == 7

    async def committed() -> int:
        return 3

    assert await eventually(committed, timeout=60, what="a commit") == 3


async def test_a_condition_that_never_holds_fails_naming_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for a first commit \(last seen: 0\)"):
        await eventually(lambda: 0, timeout=0, what="a first commit")


async def test_an_assertion_in_the_condition_fails_at_once() -> None:
    def worker_alive() -> bool:
        raise AssertionError("the worker exited with 1")

    with pytest.raises(AssertionError, match="exited with 1"):
        await eventually(worker_alive, timeout=3600, what="a worker")
