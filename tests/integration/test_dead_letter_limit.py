"""The dead-letter limit on the real broker: a stream of broken records stops the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.processes import SluiceProcess, free_port, wait_for_no_lag
from worker.config import Settings
from worker.deadletters.replay import dead_letter_end_offsets, read_dead_letters
from worker.kafka.connection import client_options
from worker.kafka.group_offsets import group_progress
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


async def _produce(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.source_topic, value=v, partition=0)
                   for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _committed(settings: Settings) -> int:
    progress = await group_progress(settings, settings.source_topic)
    return next(p.committed or 0 for p in progress if p.partition == 0)


async def _readiness(port: int) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/health/ready") as response:
        return response.status, await response.json()


async def test_a_stream_of_bad_records_trips_the_limit_commits_nothing_past_it_and_says_why(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "dead_letter_limit_ratio": 0.5, "dead_letter_limit_window": 20,
        "counting_sink_flush_interval": 0.2, "commit_interval": 0.5, "web_port": free_port()})
    await ensure_topics(settings)
    before = await dead_letter_end_offsets(settings)
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
        good = [orjson.dumps({"type": "track", "event": "Ok", "userId": "u",
                              "messageId": f"ok-{i}"}) for i in range(20)]
        await _produce(settings, good)
        await wait_for_no_lag(settings, worker)
        # A producer deploy breaks the format: with 20 good outcomes in the window of 20, the
        # 11th dead letter makes 11 of the last 20 (> 0.5). It is neither written nor
        # committed, and neither is anything after it.
        await _produce(settings, [b"{broken"] * 200)
        worker.wait_for_log(r"dead-letter limit reached")
        # Records are acknowledged per fetched batch, so the commit may stay before the broken
        # stretch (20) or reach the tripping record (30): never past it.
        for _ in range(10):
            assert 20 <= await _committed(settings) <= 30
            await asyncio.sleep(0.5)
        status, body = await _readiness(settings.web_port)
        assert status == 503
        assert "SLUICE_DEAD_LETTER_LIMIT_RATIO" in body["problems"]["dead_letters"]
        assert worker.process.poll() is None  # paused, not crashed
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log()
    after = await dead_letter_end_offsets(settings)
    letters = await read_dead_letters(settings, before, after)
    assert sorted(int(d.headers["source.offset"]) for d in letters) == list(range(20, 30))
