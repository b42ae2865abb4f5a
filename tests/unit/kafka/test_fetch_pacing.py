"""Empty fetches answered at once are paced; fetches with records, or held back, are not."""

from __future__ import annotations

import asyncio
from typing import Any

from worker.kafka.fetch_pacing import EMPTY_FETCH_PAUSE, pace_empty_fetches


class FakeFetcher:
    """An aiokafka fetcher stand-in: each fetch 'takes' `took` seconds on a fake clock."""

    def __init__(self, answers: list[tuple[bool, float]]) -> None:
        self.answers = answers
        self.now = 100.0
        self.sleeps: list[float] = []
        self.requests: list[Any] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        has_new_data, took = self.answers.pop(0)
        self.requests.append((assignment, node_id, request))
        self.now += took
        return has_new_data

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def paced(answers: list[tuple[bool, float]]) -> FakeFetcher:
    fetcher = FakeFetcher(answers)
    pace_empty_fetches(fetcher, clock=lambda: fetcher.now, sleep=fetcher.sleep)
    return fetcher


def test_an_empty_answer_that_came_at_once_waits_out_the_pause() -> None:
    fetcher = paced([(False, 0.001)])
    assert asyncio.run(fetcher._proc_fetch_request("assignment", 1, "request")) is False
    assert fetcher.requests == [("assignment", 1, "request")]
    assert len(fetcher.sleeps) == 1
    assert abs(fetcher.sleeps[0] - (EMPTY_FETCH_PAUSE - 0.001)) < 1e-9


def test_an_answer_with_records_is_never_delayed() -> None:
    fetcher = paced([(True, 0.0)])
    assert asyncio.run(fetcher._proc_fetch_request(None, 1, None)) is True
    assert fetcher.sleeps == []


def test_an_empty_answer_the_broker_held_is_not_delayed_further() -> None:
    # A Kafka broker holds an empty fetch for fetch_max_wait_ms (1.5 s under Faust).
    fetcher = paced([(False, 1.5)])
    assert asyncio.run(fetcher._proc_fetch_request(None, 1, None)) is False
    assert fetcher.sleeps == []


def test_a_spinning_broker_is_asked_at_most_once_per_pause() -> None:
    fetcher = paced([(False, 0.0)] * 100)
    started = fetcher.now

    async def spin() -> None:
        for _ in range(100):
            await fetcher._proc_fetch_request(None, 1, None)

    asyncio.run(spin())
    assert fetcher.now - started >= 100 * EMPTY_FETCH_PAUSE - 1e-9


def test_a_pause_cancelled_by_the_fetchers_close_answers_instead_of_raising() -> None:
    # aiokafka's Fetcher.close() cancels its fetch tasks and awaits them unguarded.
    fetcher = FakeFetcher([(False, 0.0)])
    pace_empty_fetches(fetcher)  # the real asyncio.sleep

    async def close_during_the_pause() -> bool:
        task = asyncio.ensure_future(fetcher._proc_fetch_request(None, 1, None))
        await asyncio.sleep(0.001)
        task.cancel()
        return await task

    assert asyncio.run(close_during_the_pause()) is False
