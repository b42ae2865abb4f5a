"""The status page (`/`) of a worker on the local stack, opened in headless Chromium (Debian's
package) while events flow: it refreshes itself, its values change, and they are /metrics'."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.async_api import Page, async_playwright

from tests.support.processes import SluiceProcess, free_port, wait_for_no_lag
from tests.support.status_pages import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    READ_CELLS,
    SampleKey,
    browser_values,
    exposition_values,
)
from worker.config import Settings
from worker.local.produce import produce, synthetic_records
from worker.local.samples import SAMPLE_FORMS

pytestmark = pytest.mark.e2e

ES_PASSWORD = "status-page-es-secret"  # the local Elasticsearch API accepts any password


def _scrape(port: int) -> dict[SampleKey, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return exposition_values(answer.read().decode())


async def _values_after_next_refresh(page: Page) -> dict[SampleKey, float]:
    """Wait for the page to swap in a new <main> by itself, then read its value cells."""
    await page.evaluate("() => { document.querySelector('main').dataset.seen = '1'; }")
    await page.wait_for_function("() => !document.querySelector('main').dataset.seen",
                                 timeout=15_000)
    return browser_values(await page.evaluate(READ_CELLS))


async def test_the_status_page_refreshes_in_chromium_and_shows_what_metrics_shows(
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
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                args=CHROMIUM_FLAGS, headless=True)
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            hosts: set[str] = set()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))
            await page.goto(f"http://127.0.0.1:{port}/")
            await page.wait_for_selector("main[data-ready='true']", timeout=60_000)
            idle = browser_values(await page.evaluate(READ_CELLS))
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
                shown = await _values_after_next_refresh(page)
                after = _scrape(port)
                for key, value in shown.items():
                    if key[0].endswith("_total"):  # a series born meanwhile started at 0
                        assert before.get(key, 0) <= value <= after[key], key
                seen.append(shown[delivered])
            assert len(set(seen)) >= 3, f"the page did not change by itself: {seen}"
            rates = browser_values(await page.evaluate(READ_CELLS), kind="rate")
            assert rates.get(delivered, 0) > 0, "no events/s for Elasticsearch while events flow"

            await traffic
            await wait_for_no_lag(settings, worker, timeout=120)
            # Settled: every value the page shows is exactly the scrape's.
            deadline = time.monotonic() + 60
            while True:
                before = _scrape(port)
                shown = await _values_after_next_refresh(page)
                after = _scrape(port)
                if before == after or time.monotonic() > deadline:
                    break
            assert before == after, "the worker never settled"
            for key, value in shown.items():
                assert after[key] == value, key
            assert shown[delivered] == shown[("sluice_events_delivered_total",
                                              (("sink", "s3"),))] > 0
            assert any(name == "sluice_dead_letters_total" for name, _ in shown)
            assert shown[("sluice_s3_open_parts", ())] == 0

            text = await page.inner_text("body")
            for secret in (ES_PASSWORD, settings.aws_secret_access_key):
                assert secret not in text and secret not in await page.content()
            await page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            await context.close()
        assert errors == [], errors
        assert hosts == {f"127.0.0.1:{port}"}, hosts
    finally:
        if traffic is not None and not traffic.done():
            traffic.cancel()
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-3000:]
