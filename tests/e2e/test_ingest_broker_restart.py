"""The broker goes away under `sluice ingest`: 503 with Retry-After, then every event it
acknowledged (200) is in Elasticsearch and S3 exactly once after the broker is back.

The broker is the test's own (`own_broker`), as in test_broker_restart.py, and for the same
reason the clients pause for a second before it is stopped: the local broker (noida-db 0.2.3)
loses records it acknowledged in the last milliseconds before a SIGTERM, which would count as
lost here although `sluice ingest` did wait for the acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingest_traffic import Ingest, outage_settings, segment_event
from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.local.stack import LocalStack

pytestmark = pytest.mark.e2e

BROKER_DOWN_SECONDS = 8.0


class Books:
    """Event ids by answer: 200 (must be delivered) or anything else (may be); statuses by
    phase of the run."""

    def __init__(self) -> None:
        self.accepted: set[str] = set()
        self.maybe: set[str] = set()
        self.phase = "before"
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.retry_after: set[str] = set()
        self.accepted_again = asyncio.Event()  # a 200 after the broker came back


async def _client(ingest: Ingest, books: Books, stop: asyncio.Event,
                  flowing: asyncio.Event, per_second: float = 15.0) -> None:
    """Segment batches of three events, one request at a time, until `stop`."""
    while not stop.is_set():
        if not flowing.is_set():
            await asyncio.sleep(0.05)
            continue
        pairs = [segment_event(f"user-{n}") for n in range(3)]
        ids = {event_id for event_id, _ in pairs}
        phase = books.phase
        try:
            status, _, headers = await ingest.segment(
                orjson.dumps({"batch": [event for _, event in pairs]}))
        except aiohttp.ClientError:
            status, headers = 0, {}
        books.statuses[phase, status] += 1
        if status == 200:
            books.accepted |= ids
            if phase == "after":
                books.accepted_again.set()
        else:
            books.maybe |= ids
            if status == 503:
                books.retry_after.add(headers.get("Retry-After", ""))
        await asyncio.sleep(1 / per_second)


async def test_broker_outage_answers_503_and_loses_no_acknowledged_event(
        own_broker: tuple[LocalStack, Settings], tmp_path: Path) -> None:
    stack, settings = own_broker
    settings = outage_settings(settings, session_timeout=10.0, rebalance_timeout=20.0)
    await ensure_topics(settings)
    ingest_process = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
    worker = SluiceProcess(settings.model_copy(update={"web_port": 0}), ["worker"],
                           tmp_path / "worker.log")
    books = Books()
    stop, flowing = asyncio.Event(), asyncio.Event()
    flowing.set()
    try:
        await asyncio.to_thread(ingest_process.wait_for_log, r"ingest: producing to", 60)
        await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            client = asyncio.create_task(_client(Ingest(settings, session), books, stop,
                                                 flowing))
            await asyncio.sleep(6)
            flowing.clear()
            await asyncio.sleep(1)  # see the module docstring
            await asyncio.to_thread(stack.stop_server, "noida")
            books.phase = "outage"
            flowing.set()
            await asyncio.sleep(BROKER_DOWN_SECONDS)
            flowing.clear()
            await asyncio.sleep(3)  # the last outage request is answered
            await asyncio.to_thread(stack.start_server, "noida", lambda line: None)
            restarted = time.monotonic()
            books.phase = "after"
            flowing.set()
            await asyncio.wait_for(books.accepted_again.wait(), 60)
            back_after = time.monotonic() - restarted
            await asyncio.sleep(5)
            stop.set()
            await client
        await wait_for_no_lag(settings, worker, timeout=180)
        print(f"ingest answers: {dict(books.statuses)}; 200 again {back_after:.1f}s after the "
              f"broker restarted; {len(books.accepted)} events acknowledged")
    finally:
        stop.set()
        codes = ingest_process.stop(), worker.stop()
    assert codes == (0, 0), (ingest_process.log()[-3000:], worker.log()[-3000:])
    outage = {status for (phase, status) in books.statuses if phase == "outage"}
    assert outage == {503}, books.statuses
    assert books.retry_after == {str(settings.ingest_retry_after)}
    assert books.statuses["before", 200] > 0 and books.statuses["after", 200] > 0
    assert_exactly_once(books.accepted, await elasticsearch_ids(settings), "Elasticsearch",
                        books.maybe)
    assert_exactly_once(books.accepted, await s3_ids(settings), "S3", books.maybe)
