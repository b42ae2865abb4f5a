"""The broker is paused (SIGSTOP) under `sluice ingest` in the middle of requests: a request
answered 503 is never written, although the broker appends its records when it resumes.

The broker is the test's own (`own_broker`). While it is stopped, the kernel still takes the
produce requests sent to it into its socket; when it resumes, it appends them. Before issue 27
the producer of a request answered 503 was stopped and flushed, so those records reached the
topic and both sinks, and the sender's retry wrote them a second time. Now each request is
produced in a transaction that is aborted, never committed, once its request got 503; the worker
reads read_committed. The test counts by event id: the records of 503'd requests are in the
topic's log (read_uncommitted: the pause did catch requests in flight), and none of them is
visible to a read_committed reader, in Elasticsearch or in S3; every event answered 200 is in
both sinks exactly once. A pause that caught no produce request in flight (it fell between two
transactions) proves nothing, so the broker is paused again, up to three times.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingest_traffic import Ingest, outage_settings, segment_event
from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids, topic_values
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.local.stack import LocalStack

pytestmark = pytest.mark.e2e

PAUSE_SECONDS = 6.0
PAUSES = 3  # at most; see the loop
SENDERS = 4


class Books:
    """Event ids by the answer their request got, and the statuses by phase."""

    def __init__(self) -> None:
        self.by_status: dict[int, set[str]] = {}
        self.phase = "before"
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.retry_after: set[str] = set()
        self.accepted_again = asyncio.Event()

    def ids(self, *statuses: int) -> set[str]:
        return set().union(*(self.by_status.get(status, set()) for status in statuses))


async def _ids(settings: Settings, isolation_level: str = "read_committed") -> Counter[str]:
    """The event ids on the source topic, as a reader with `isolation_level` sees them."""
    return Counter(orjson.loads(value)["messageId"] for value in
                   await topic_values(settings, isolation_level=isolation_level))


async def _sender(ingest: Ingest, books: Books, stop: asyncio.Event) -> None:
    while not stop.is_set():
        pairs = [segment_event(f"user-{n}") for n in range(3)]
        phase = books.phase
        try:
            status, _, headers = await ingest.segment(
                orjson.dumps({"batch": [event for _, event in pairs]}))
        except aiohttp.ClientError:
            status, headers = 0, {}
        books.statuses[phase, status] += 1
        books.by_status.setdefault(status, set()).update(event_id for event_id, _ in pairs)
        if status in (503, 504):
            books.retry_after.add(headers.get("Retry-After", ""))
        if status == 200 and phase == "after":
            books.accepted_again.set()
        await asyncio.sleep(0.05)


async def test_a_request_answered_503_while_the_broker_is_paused_is_never_written(
        own_broker: tuple[LocalStack, Settings], tmp_path: Path) -> None:
    stack, settings = own_broker
    settings = outage_settings(settings, session_timeout=20.0, rebalance_timeout=30.0)
    await ensure_topics(settings)
    ingest_process = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
    worker = SluiceProcess(settings.model_copy(update={"web_port": 0}), ["worker"],
                           tmp_path / "worker.log")
    broker = stack.owned_process(stack.server("noida"))
    assert broker is not None
    books, stop = Books(), asyncio.Event()
    try:
        await asyncio.to_thread(ingest_process.wait_for_log, r"ingest: producing to", 60)
        await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            ingest = Ingest(settings, session)
            senders = [asyncio.create_task(_sender(ingest, books, stop))
                       for _ in range(SENDERS)]
            for _ in range(PAUSES):
                await asyncio.sleep(3)
                books.phase = "paused"
                broker.suspend()  # SIGSTOP: requests now in flight stay in its socket
                try:
                    await asyncio.sleep(PAUSE_SECONDS)
                finally:
                    books.phase = "after"
                    broker.resume()  # SIGCONT: it appends what it had received
                books.accepted_again.clear()
                await asyncio.wait_for(books.accepted_again.wait(), 90)
                # A pause may catch no produce request in flight (between two transactions):
                # then pause again, so that the test always proves something.
                if books.ids(503) & set(await _ids(settings, "read_uncommitted")):
                    break
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*senders)
        await wait_for_no_lag(settings, worker, timeout=180)
    finally:
        stop.set()
        if broker.is_running() and broker.status() == "stopped":
            broker.resume()
        codes = ingest_process.stop(), worker.stop()
    assert codes == (0, 0), (ingest_process.log()[-3000:], worker.log()[-3000:])
    paused = {status for (phase, status) in books.statuses if phase == "paused"}
    assert paused <= {200, 503, 504} and 503 in paused, books.statuses
    assert books.retry_after == {str(settings.ingest_retry_after)}
    accepted, not_written = books.ids(200), books.ids(503)
    in_log, committed = await _ids(settings, "read_uncommitted"), await _ids(settings)
    print(f"answers {dict(books.statuses)}; {len(not_written)} events answered 503, "
          f"{len(not_written & set(in_log))} of them in the topic's log (appended when the "
          f"broker resumed), {len(not_written & set(committed))} of them committed, "
          f"{len(books.ids(504))} answered 504")
    # The pause caught requests in flight: the broker did append records of 503'd requests...
    assert not_written & set(in_log), "no 503'd request reached the broker: nothing was tested"
    # ...and none of them is visible: not to a read_committed reader, not in either sink.
    assert not not_written & set(committed), "records of requests answered 503 were committed"
    assert_exactly_once(accepted, committed, "the topic (read_committed)", books.ids(504, 0))
    assert_exactly_once(accepted, await elasticsearch_ids(settings), "Elasticsearch",
                        books.ids(504, 0))
    assert_exactly_once(accepted, await s3_ids(settings), "S3", books.ids(504, 0))
