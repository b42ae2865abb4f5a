"""A web shop's page with analytics.js, served from loopback, and Debian's chromium to open it.

analytics.js is @segment/analytics-next's own browser build (``dist/umd``) from
``tests/node_modules`` (``make test-clients``), served by this page server: nothing comes from a
CDN. The page loads it with Sluice as its settings host (``cdnURL``), so the settings document
(``/v1/projects/<write key>/settings``) sends the page's events back to Sluice.

Chromium is Debian's (``/usr/bin/chromium``, ``make browser``), driven by Playwright with
``executable_path``: Playwright downloads no browser here. Without chromium the test is
skipped, except under ``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.paths import REPO_ROOT

ANALYTICS_BUILD = (REPO_ROOT / "tests" / "node_modules" / "@segment" / "analytics-next" / "dist"
                   / "umd")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Sluice test shop</title>
<script src="/analytics-next/index.js"></script></head>
<body><h1>Pricing</h1><script>
// Load analytics.js with Sluice as its settings host, then page, identify and track; each call
// resolves once its event was delivered (or given up on).
window.sendAll = async (writeKey, cdnURL) => {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({ writeKey, cdnURL });
  const sent = [];
  const record = (ctx) => sent.push({ type: ctx.event.type, messageId: ctx.event.messageId,
    userId: ctx.event.userId || null, anonymousId: ctx.event.anonymousId || null,
    failed: ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null });
  record(await analytics.page('Pricing', { plan: 'pro' }));
  record(await analytics.identify('browser-user-42', { email: 'ada@example.com' }));
  record(await analytics.track('Order Completed', { revenue: 12.5, currency: 'EUR' }));
  return sent;
};
// A request that needs a CORS preflight (it carries Authorization), as analytics.js's do.
window.preflighted = async (url, writeKey) => {
  try {
    const response = await fetch(url, { method: 'POST', body: '{"batch": []}',
      headers: { 'Authorization': 'Basic ' + btoa(writeKey + ':'),
                 'Content-Type': 'application/json' } });
    return 'status ' + response.status;
  } catch (error) {
    return 'blocked: ' + error;
  }
};
</script></body></html>
"""


def chromium() -> str:
    """Debian's chromium, or a skip (a failure under CI=true) saying how to install it."""
    path = shutil.which("chromium")
    missing = []
    if path is None:
        missing.append("chromium (`make browser`, as root)")
    if not (ANALYTICS_BUILD / "index.js").exists():
        missing.append("analytics.js (`make test-clients`)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert path is not None
    return path


class PageServer:
    """Serves the page and analytics.js on a loopback port, from a thread of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> PageServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(),  # type: ignore[union-attr]
                                         self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application()

        async def page(request: web.Request) -> web.Response:
            return web.Response(text=PAGE, content_type="text/html")

        app.router.add_get("/", page)
        app.router.add_static("/analytics-next/", Path(ANALYTICS_BUILD))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
