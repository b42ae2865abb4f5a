"""`sluice ingest` under attack on loopback, with its default limits, while signed traffic runs.

The attack (``bench.hostile``, bounded in count and time): 500 slowloris connections, 50 bodies
of 15 MiB without valid credentials, 200 requests with unreadable credential headers or header
lines, and one client address guessing a bearer token 100 times in a row. Meanwhile three
senders with valid credentials (Segment signature, bearer NDJSON, Firehose key) run, each from
its own client address, as a health probe and an RSS sampler do.

The server is a real `sluice ingest` process on the session's broker, with the defaults sized
for a 512 MiB pod; it trusts 127.0.0.1 as its proxy, so each attacker's `X-Forwarded-For` makes
it a client of its own. It must: answer the signed senders only 2xx, or 429 / 503 with
Retry-After; stay under 256 MiB of RSS; answer the health probe within a second throughout; put
every accepted event on the topic exactly once and nothing of the attack.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest

from bench.hostile import Attack, AttackReport, run_attack
from tests.support.ingest_traffic import Ingest, access_log, ingest_settings, segment_event
from tests.support.ledger import assert_exactly_once, topic_values
from tests.support.processes import SluiceProcess
from worker.config import Settings
from worker.kafka.topics import ensure_topics

pytestmark = pytest.mark.e2e

RSS_BOUND_MIB = 256
PROBE_BOUND_SECONDS = 1.0


class Senders:
    """The signed senders' books: answers (with Retry-After), accepted ids, latencies."""

    def __init__(self) -> None:
        self.answers: Counter[tuple[int, bool]] = Counter()  # (status, has Retry-After)
        self.accepted: list[str] = []
        self.accepted_during_attack = 0
        self.attacking = False
        self.latencies: list[float] = []


async def _signed_sender(ingest: Ingest, form: str, books: Senders, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if form == "firehose":
            pairs = [access_log() for _ in range(3)]
        else:
            pairs = [segment_event(f"user-{form}-{n}") for n in range(3)]
        events = [event for _, event in pairs]
        started = time.monotonic()
        if form == "segment":
            status, _, headers = await ingest.segment(orjson.dumps({"batch": events}))
        elif form == "ndjson":
            status, _, headers = await ingest.ndjson(events)
        else:
            status, _, headers = await ingest.firehose(events)
        books.latencies.append(time.monotonic() - started)
        books.answers[status, "Retry-After" in headers] += 1
        if status == 200:
            books.accepted += [event_id for event_id, _ in pairs]
            books.accepted_during_attack += books.attacking
        await asyncio.sleep(0.02)


async def _probe(url: str, latencies: list[float], statuses: Counter[int],
                 stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(url) as response:
                    await response.read()
                    statuses[response.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.2)


async def _sample_rss(process: psutil.Process, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(process.memory_info().rss)
        await asyncio.sleep(0.1)


def _event_id(value: bytes) -> str:
    event = orjson.loads(value)
    return str(event.get("messageId") or event.get("requestId"))


async def test_ingest_under_attack_stays_bounded_and_serves_signed_senders(
        settings: Settings, tmp_path: Path) -> None:
    settings = ingest_settings(settings).model_copy(update={
        "ingest_trusted_proxies": ["127.0.0.1"]})
    await ensure_topics(settings)
    ingest_process = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
    attack, report = Attack(), AttackReport()
    books, stop = Senders(), asyncio.Event()
    probe_latencies: list[float] = []
    probe_statuses: Counter[int] = Counter()
    rss: list[int] = []
    try:
        await asyncio.to_thread(ingest_process.wait_for_log, r"ingest: producing to", 60)
        process = psutil.Process(ingest_process.process.pid)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            watchers = [
                asyncio.create_task(_probe(f"http://127.0.0.1:{settings.web_port}/health/live",
                                           probe_latencies, probe_statuses, stop)),
                asyncio.create_task(_sample_rss(process, rss, stop))]
            senders = [asyncio.create_task(_signed_sender(
                Ingest(settings, session, forwarded_for=f"192.0.2.{n}"), form, books, stop))
                for n, form in enumerate(("segment", "ndjson", "firehose"), start=10)]
            await asyncio.sleep(2)
            books.attacking = True
            started = time.monotonic()
            await asyncio.wait_for(run_attack(settings.ingest_port, attack, report),
                                   attack.seconds + 30)
            attack_seconds = time.monotonic() - started
            books.attacking = False
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*senders, *watchers)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{settings.web_port}/metrics") as response:
                metrics = await response.text()
    finally:
        stop.set()
        code = ingest_process.stop()
    on_topic = Counter(_event_id(value) for value in await topic_values(settings))
    latencies = sorted(books.latencies)
    print(f"attack took {attack_seconds:.1f}s: {report.summary()}; slowloris connections open "
          f"at most {max(report.slowloris_open_seconds):.1f}s; signed senders: "
          f"{dict(books.answers)}, p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms; peak RSS "
          f"{max(rss) / 2**20:.0f} MiB; health probe at most {max(probe_latencies):.2f}s")
    assert code == 0, ingest_process.log()[-3000:]
    assert "Traceback" not in ingest_process.log()
    # The signed senders: 2xx, or 429 / 503 with Retry-After, and served during the attack.
    assert {(status, retry) for status, retry in books.answers if status != 200} <= {
        (429, True), (503, True)}, books.answers
    assert books.accepted_during_attack > 0
    # Every accepted event once on the topic; nothing of the attack.
    assert_exactly_once(set(books.accepted), on_topic, "the topic")
    assert len(books.accepted) == len(set(books.accepted))
    # Memory and liveness.
    assert max(rss) < RSS_BOUND_MIB * 2**20, f"peak RSS {max(rss) / 2**20:.0f} MiB"
    assert set(probe_statuses) == {200} and max(probe_latencies) < PROBE_BOUND_SECONDS
    # What each attack got.
    header_timeout = settings.ingest_header_timeout
    assert report.statuses["slowloris"] == Counter({408: attack.slowloris})
    assert max(report.slowloris_open_seconds) < header_timeout + attack.trickle_seconds + 3
    assert set(report.statuses["big_body"]) <= {401, 403, 429, 503}
    assert set(report.statuses["bad_header"]) <= {400, 429}
    burst = report.statuses["failure_burst"]
    # Its burst of failures, then (the bucket refilling at its rate meanwhile) 429s.
    assert settings.ingest_auth_failure_burst <= burst[403] <= \
        settings.ingest_auth_failure_burst + attack_seconds * settings.ingest_auth_failure_rate
    assert burst[429] > 0 and set(burst) == {403, 429}
    assert f'sluice_ingest_connections_closed_total{{reason="header_timeout"}} ' \
           f'{attack.slowloris}.0' in metrics
