"""Segment's tracking API, end to end with Segment's own libraries: each sends every call type
(gzip on and off) to `sluice ingest`, and every event lands once in Elasticsearch and once in S3,
with its write key's source and its ids as the library sent them."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.documents import by_id, elasticsearch_documents, s3_documents
from tests.support.fault_proxy import FaultProxy
from tests.support.ingest_traffic import ingest_settings
from tests.support.ledger import topic_values
from tests.support.processes import SluiceProcess, free_port, wait_for_no_lag
from tests.support.segment_clients import Sent, send_with_node, send_with_python
from worker.config import IngestForm, Settings, SinkName
from worker.deadletters.replay import read_dead_letters

pytestmark = pytest.mark.e2e

PY_KEY, NODE_KEY = "wk-python-backend", "wk-node-backend"
SOURCES = {PY_KEY: ("src-python", "Python backend"), NODE_KEY: ("src-node", None)}


def _tracking_settings(settings: Settings) -> Settings:
    return ingest_settings(settings.model_copy(update={
        "sinks": [SinkName.ELASTICSEARCH, SinkName.S3], "commit_interval": 0.5,
        "s3_part_max_age": 2.0, "elasticsearch_batch_max_age": 0.3,
        "ingest_forms": [IngestForm.TRACKING],
        "ingest_write_keys": [f"{PY_KEY}=src-python:Python backend", f"{NODE_KEY}=src-node"],
    }))


class Running:
    """`sluice ingest` and a worker on the test's settings (the worker's metrics on a port)."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.worker_metrics = free_port()
        self.ingest = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
        self.worker = SluiceProcess(settings.model_copy(update={"web_port": self.worker_metrics}),
                                    ["worker"], tmp_path / "worker.log")
        self.url = f"http://127.0.0.1:{settings.ingest_port}"

    def __enter__(self) -> Running:
        self.ingest.wait_for_log(r"ingest: producing to", 60)
        return self

    def __exit__(self, *_: object) -> None:
        codes = self.ingest.stop(), self.worker.stop()
        assert codes == (0, 0), (self.ingest.log()[-2000:], self.worker.log()[-2000:])
        assert "Traceback" not in self.ingest.log() + self.worker.log()

    async def settled(self) -> None:
        self.worker.wait_for_log(r"partitions assigned: \S+\[\d", 120)
        await wait_for_no_lag(self.settings, self.worker, timeout=180)

    async def worker_metric(self, line_start: str) -> float:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{self.worker_metrics}/metrics") as response:
            text = await response.text()
        found = [line for line in text.splitlines() if line.startswith(line_start)]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def _assert_landed_once(sent: dict[str, tuple[Sent, str]], documents: list[dict],
                        where: str) -> None:
    """Every sent event once, nothing else, each with its source, type and ids as sent."""
    found = by_id(documents, where)
    assert set(found) == set(sent), (where, set(sent) ^ set(found))
    for message_id, (event, write_key) in sent.items():
        document = found[message_id]
        source_id, source_name = SOURCES[write_key]
        assert document["source_id"] == source_id, (where, document)
        assert document.get("source_name") == source_name
        assert document["type"] == event.type
        assert document.get("user_id") == event.user_id
        assert document.get("anonymous_id") == event.anonymous_id
        assert document["received_at"] and document["original_timestamp"]
        # Segment fills context.ip for client-side libraries only: these are server-side.
        assert "ip" not in document.get("context", {})


async def test_segments_python_and_node_libraries_deliver_every_call_once_to_both_sinks(
        settings: Settings, tmp_path: Path) -> None:
    tracking = _tracking_settings(settings)
    sent: dict[str, tuple[Sent, str]] = {}
    with Running(tracking, tmp_path) as running:
        for gzip in (False, True):
            for event in await asyncio.to_thread(send_with_python, running.url, PY_KEY, gzip,
                                                 f"py-gzip-{gzip}"):
                sent[event.message_id] = (event, PY_KEY)
            for event in await asyncio.to_thread(send_with_node, running.url, NODE_KEY, gzip,
                                                 f"node-gzip-{gzip}"):
                sent[event.message_id] = (event, NODE_KEY)
        # No library sends an event Segment would accept and then drop (neither userId nor
        # anonymousId): this one request is made by hand to show where such an event goes.
        dropped = b'{"type":"track","event":"Orphan","messageId":"orphan-1"}'
        async with aiohttp.ClientSession() as session, session.post(
                f"{running.url}/v1/batch", data=b'{"batch": [' + dropped + b"]}",
                headers={"Authorization": "Basic "
                         + base64.b64encode(f"{PY_KEY}:".encode()).decode()}) as response:
            assert response.status == 200
        await running.settled()
        missing_ids = await running.worker_metric(
            'sluice_dead_letters_total{error_class="MissingField",stage="decode"}')
        assert missing_ids == 1.0
    assert len(sent) == 4 * 18  # 6 call types x 3 users, per library and gzip setting
    assert {event.type for event, _ in sent.values()} == {
        "identify", "track", "page", "screen", "group", "alias"}
    _assert_landed_once(sent, await elasticsearch_documents(tracking), "Elasticsearch")
    _assert_landed_once(sent, await s3_documents(tracking), "S3")
    (letter,) = await read_dead_letters(tracking)
    assert letter.value == dropped and letter.error_class == "MissingField"
    assert dict(letter.original_headers)["ingest.source_id"] == b"src-python"


async def test_a_batch_retried_after_a_lost_answer_is_archived_once(
        settings: Settings, tmp_path: Path) -> None:
    # The answer to the library's first request is lost after ingest wrote the batch: the
    # library sends the same batch again (the same messageIds), and both copies reach the topic.
    tracking = _tracking_settings(settings)
    with Running(tracking, tmp_path) as running:
        proxy = FaultProxy(running.url).start()
        try:
            proxy.lose_answers(2)
            sent = await asyncio.to_thread(send_with_python, proxy.url, PY_KEY, False, "retry")
        finally:
            proxy.stop()
        assert proxy.lost_answers == 2
        await running.settled()
        duplicates = await running.worker_metric("sluice_events_duplicate_total")
    ids = {event.message_id for event in sent}
    topic_records = await _records_on_topic(tracking)
    assert topic_records > len(ids)  # the retried batches are on the topic twice...
    assert duplicates == topic_records - len(ids)  # ...and counted as copies, once each
    for where, documents in (("Elasticsearch", await elasticsearch_documents(tracking)),
                             ("S3", await s3_documents(tracking))):
        assert set(by_id(documents, where)) == ids  # ...and archived once


async def _records_on_topic(settings: Settings) -> int:
    # As the worker reads them: the door's transactions put markers between the records, so
    # offsets do not count records.
    return len(await topic_values(settings))


def test_sent_events_are_json_serialisable() -> None:
    # The libraries' events pass through JSON (the Node client's report): a sanity check of
    # the Sent record used above.
    assert orjson.loads(orjson.dumps(Sent("track", "m", "u", None).__dict__))["type"] == "track"


# --- analytics.js in a real browser ------------------------------------------------------------

WEB_KEY = "wk-web-shop"


async def test_analytics_js_in_chromium_delivers_page_identify_and_track_once(
        settings: Settings, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from playwright.async_api import async_playwright

    from tests.support.browser_page import CHROMIUM_FLAGS, PageServer, chromium

    executable = chromium()
    page_port = free_port()
    shop = f"http://127.0.0.1:{page_port}"
    tracking = _tracking_settings(settings).model_copy(update={
        "ingest_write_keys": [f"{WEB_KEY}=src-web:Web shop"], "ingest_cors_origins": [shop]})
    skew = timedelta(hours=3)  # the visitor's clock is three hours slow
    with Running(tracking, tmp_path) as running, PageServer(page_port):
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable,
                                                       args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page()
                await page.clock.set_system_time(datetime.now(UTC) - skew)
                await page.goto(shop + "/")
                called = datetime.now(UTC)
                sent = await page.evaluate("([key, url]) => sendAll(key, url)",
                                           [WEB_KEY, running.url])
                user_agent = await page.evaluate("navigator.userAgent")
                allowed = await page.evaluate("([url, key]) => preflighted(url, key)",
                                              [running.url + "/v1/batch", WEB_KEY])
                # The same page from another origin: its preflight is refused.
                other = await browser.new_page()
                await other.goto(f"http://localhost:{page_port}/")
                refused = await other.evaluate("([url, key]) => preflighted(url, key)",
                                               [running.url + "/v1/batch", WEB_KEY])
            finally:
                await browser.close()
        await running.settled()
    assert [event["failed"] for event in sent] == [None, None, None], sent
    assert allowed == "status 200" and refused.startswith("blocked"), (allowed, refused)
    ids = {event["messageId"]: event for event in sent}
    for where, documents in (("Elasticsearch", await elasticsearch_documents(tracking)),
                             ("S3", await s3_documents(tracking))):
        found = by_id(documents, where)
        assert set(found) == set(ids), where
        for message_id, event in ids.items():
            document = found[message_id]
            assert document["type"] == event["type"] and document["source_id"] == "src-web"
            assert document.get("user_id") == event["userId"]
            assert document["anonymous_id"] == event["anonymousId"]
            assert document["context"]["ip"] == "127.0.0.1"  # from the connection
            assert document["context"]["userAgent"] == user_agent
            # The device's clock was 3 h slow; the timestamp is corrected to the real time.
            original = datetime.fromisoformat(document["original_timestamp"])
            corrected = datetime.fromisoformat(document["timestamp"])
            assert abs(original + skew - called) < timedelta(seconds=30)
            assert abs(corrected - called) < timedelta(seconds=30)
            assert corrected <= datetime.fromisoformat(document["received_at"])
