"""The status pages (`/`) of a worker and of `sluice ingest` on the local stack, opened in
headless Chromium (Debian's package) while traffic flows: they refresh themselves, their values
change, and they are /metrics'."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingest_traffic import ACCESS_KEY, SECRET, TOKEN, Ingest, ingest_settings
from tests.support.ingest_traffic import segment_event as segment
from tests.support.processes import SluiceProcess, free_port, wait_for_no_lag
from tests.support.status_pages import BrowserPage, SampleKey, exposition_values, open_in_chromium
from worker.config import Settings
from worker.local.produce import produce, synthetic_records
from worker.local.samples import SAMPLE_FORMS

pytestmark = pytest.mark.e2e

ES_PASSWORD = "status-page-es-secret"  # the local Elasticsearch API accepts any password


def _scrape(port: int) -> dict[SampleKey, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return exposition_values(answer.read().decode())


async def _settled(browser: BrowserPage, port: int) -> tuple[dict, dict]:
    """(what the page shows, /metrics) once two scrapes around a refresh agree."""
    deadline = time.monotonic() + 60
    while True:
        before = _scrape(port)
        shown = await browser.values_after_next_refresh()
        after = _scrape(port)
        if before == after or time.monotonic() > deadline:
            assert before == after, "the process never settled"
            return shown, after


async def _no_secret(browser: BrowserPage, *secrets: str) -> None:
    content = await browser.page.content()
    for secret in secrets:
        assert secret not in content


async def test_the_worker_page_refreshes_in_chromium_and_shows_what_metrics_shows(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "web_host": "127.0.0.1", "web_port": port,
        "s3_part_max_age": 2.0, "s3_hour_close_grace": 0.0, "commit_interval": 0.5,
        "elasticsearch_username": "elastic", "elasticsearch_password": ES_PASSWORD,
    })
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    traffic: asyncio.Task | None = None
    try:
        worker.wait_for_log(rf"partitions assigned: {settings.source_topic}\[0,1,2,3\]", 90)
        async with open_in_chromium(f"http://127.0.0.1:{port}/",
                                    tmp_path / "chromium-profile") as browser:
            await browser.page.wait_for_selector("main[data-ready='true']", timeout=60_000)
            idle = await browser.values()
            assert idle[("sluice_partition_assigned",
                         (("partition", "0"), ("topic", settings.source_topic)))] == 1

            # Events flow: 3,000 records at 300/s, 5% malformed (dead letters at decode).
            traffic = asyncio.create_task(produce(settings, synthetic_records(
                3000, SAMPLE_FORMS, 0.05, settings.max_record_bytes, seed=29), rate=300))
            delivered = ("sluice_events_delivered_total", (("sink", "elasticsearch"),))
            seen: list[float] = [idle[delivered]]
            deadline = time.monotonic() + 60
            while len(set(seen)) < 3 and time.monotonic() < deadline:
                # While values move, each counter the page shows lies between two scrapes
                # taken before and after the page's own refresh.
                before = _scrape(port)
                shown = await browser.values_after_next_refresh()
                after = _scrape(port)
                for key, value in shown.items():
                    if key[0].endswith("_total"):  # a series born meanwhile started at 0
                        assert before.get(key, 0) <= value <= after[key], key
                seen.append(shown[delivered])
            assert len(set(seen)) >= 3, f"the page did not change by itself: {seen}"
            rates = await browser.values(kind="rate")
            assert rates.get(delivered, 0) > 0, "no events/s for Elasticsearch while events flow"

            await traffic
            await wait_for_no_lag(settings, worker, timeout=120)
            shown, scraped = await _settled(browser, port)
            for key, value in shown.items():  # settled: exactly the scrape's values
                assert scraped[key] == value, key
            assert shown[delivered] == shown[("sluice_events_delivered_total",
                                              (("sink", "s3"),))] > 0
            assert any(name == "sluice_dead_letters_total" for name, _ in shown)
            assert shown[("sluice_s3_open_parts", ())] == 0
            await _no_secret(browser, ES_PASSWORD, str(settings.aws_secret_access_key))
            await browser.page.screenshot(path=str(tmp_path / "worker-status.png"),
                                          full_page=True)
        assert browser.errors == [], browser.errors
        assert browser.hosts == {f"127.0.0.1:{port}"}, browser.hosts
    finally:
        if traffic is not None and not traffic.done():
            traffic.cancel()
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-3000:]


async def test_the_ingest_page_shows_requests_by_form_and_status_and_the_broker(
    settings: Settings, tmp_path: Path
) -> None:
    settings = ingest_settings(settings)
    port = settings.web_port
    ingest = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
    try:
        ingest.wait_for_log(r"ingest: producing to", 60)
        async with open_in_chromium(f"http://127.0.0.1:{port}/",
                                    tmp_path / "chromium-profile") as browser:
            await browser.page.wait_for_selector("main[data-ready='true']", timeout=60_000)
            assert "no request yet" in await browser.page.inner_text("main")
            async with aiohttp.ClientSession() as session:
                client = Ingest(settings, session)
                for n in range(12):
                    status, _, _ = await client.segment(orjson.dumps(segment(f"user-{n}")[1]))
                    assert status == 200
                status, _, _ = await client.segment(orjson.dumps(segment("x")[1]),
                                                    secret="not the secret")
                assert status == 403
            shown, scraped = await _settled(browser, port)
            for key, value in shown.items():
                assert scraped[key] == value, key
            requests = "sluice_ingest_requests_total"
            assert shown[(requests, (("form", "segment"), ("status", "200")))] == 12
            assert shown[(requests, (("form", "segment"), ("status", "403")))] == 1
            assert shown[("sluice_ingest_events_total", (("form", "segment"),))] == 12
            assert shown[("sluice_ingest_broker_available", ())] == 1
            await _no_secret(browser, SECRET, ACCESS_KEY, TOKEN)
            await browser.page.screenshot(path=str(tmp_path / "ingest-status.png"),
                                          full_page=True)
            # The process stops: the page keeps its last values and says since when.
            assert ingest.stop() == 0, ingest.log()[-3000:]
            await browser.page.wait_for_selector("#stale:not([hidden])", timeout=15_000)
            assert "Not answering since" in await browser.page.inner_text("#stale")
            assert await browser.values() == shown
        # Only the page's own refreshes failed (the process was gone), nothing else.
        assert all("Failed to fetch" in error or "ERR_CONNECTION_REFUSED" in error
                   for error in browser.errors), browser.errors
        assert browser.hosts == {f"127.0.0.1:{port}"}, browser.hosts
    finally:
        exit_code = ingest.stop()
    assert exit_code == 0, ingest.log()[-3000:]
