"""A report opened in Debian's headless chromium (driven by playwright, no browser download),
with the network off: what it asked for, what it logged, each panel's screenshot and the
figures of its data block."""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image, ImageStat

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: no background traffic, nothing a closed network would refuse.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]


@dataclass
class OpenedReport:
    """What the browser saw of a report."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    panels: dict[str, int] = field(default_factory=dict)   # panel id -> its data-rows
    screenshots: dict[str, bytes] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def require_chromium() -> None:
    """Skip where chromium is not installed (`make browser` installs it); fail in CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def open_report(path: Path) -> OpenedReport:
    """Load the file with every request but the file itself refused, the context offline."""
    from playwright.sync_api import Route, sync_playwright

    seen = OpenedReport()
    url = path.resolve().as_uri()

    def route(intercepted: Route) -> None:
        seen.requests.append(intercepted.request.url)
        if intercepted.request.url == url:
            intercepted.continue_()
        else:
            intercepted.abort()

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, offline=True,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("console", lambda message: seen.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
            page.route("**/*", route)
            page.goto(url, wait_until="load")
            for element in page.query_selector_all("section[data-panel]"):
                panel = element.get_attribute("data-panel") or ""
                seen.panels[panel] = int(element.get_attribute("data-rows") or 0)
                chart = element.query_selector(".chart")
                if chart is not None:
                    seen.screenshots[panel] = chart.screenshot()
            text = page.eval_on_selector("#sluice-report-data", "element => element.textContent")
            seen.data = orjson.loads(text)
        finally:
            browser.close()
    return seen


def pixel_spread(png: bytes) -> tuple[float, int]:
    """A screenshot's greyscale variance and how many colours it has: a blank panel has
    (0, 1), a drawn chart hundreds of grey levels and colours."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    variance = ImageStat.Stat(image.convert("L")).var[0]
    colours = image.getcolors(maxcolors=1 << 20) or []
    return variance, len(colours)
