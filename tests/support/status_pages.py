"""Reading the status page (``/``) as data: its value cells and what ``/metrics`` says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.scripts: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "td" and "data-metric" in attributes:
            self.cells.append(attributes)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        for name in ("src", "href", "action", "srcset"):
            if name in attributes:
                self.links.append((tag, attributes[name]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse_page(html: str) -> _Cells:
    """The page's metric cells (their attributes), inline scripts and links."""
    parser = _Cells()
    parser.feed(html)
    return parser


def cell_key(cell: dict[str, str]) -> SampleKey:
    """The sample a cell names: (metric, sorted labels)."""
    labels = tuple(sorted(tuple(pair.split("=", 1)) for pair in cell["data-labels"].split(",")
                          if pair))
    return cell["data-metric"], labels  # type: ignore[return-value]


def page_values(html: str) -> dict[SampleKey, float]:
    """The values (not rates) the page shows, by the sample each names."""
    return {cell_key(cell): float(cell["data-value"]) for cell in parse_page(html).cells
            if cell.get("class") == "value" and cell["data-value"]}


def exposition_values(text: str) -> dict[SampleKey, float]:
    """Every sample of a /metrics answer."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


# --- in a browser -----------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make browser`); playwright downloads none
# As the machine's notes say: no background connections to Google's hosts (refused here).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

READ_CELLS = """() => Array.from(document.querySelectorAll('main td[data-metric]')).map(td => ({
    metric: td.dataset.metric, labels: td.dataset.labels, value: td.dataset.value,
    kind: td.className, text: td.textContent}))"""


def browser_values(cells: list[dict[str, str]], kind: str = "value") -> dict[SampleKey, float]:
    """The values of the cells a page shows (read with READ_CELLS), by sample."""
    return {cell_key({"data-metric": cell["metric"], "data-labels": cell["labels"]}):
            float(cell["value"]) for cell in cells if cell["kind"] == kind and cell["value"]}


class BrowserPage:
    """A page open in headless Chromium, with what it logged as errors and the hosts it asked."""

    def __init__(self, page, errors: list[str], hosts: set[str]) -> None:  # noqa: ANN001
        self.page = page
        self.errors = errors
        self.hosts = hosts

    async def values(self, kind: str = "value") -> dict[SampleKey, float]:
        """The values (or rates) the page shows now."""
        return browser_values(await self.page.evaluate(READ_CELLS), kind)

    async def values_after_next_refresh(self) -> dict[SampleKey, float]:
        """Wait for the page to swap in a new <main> by itself, then read its value cells."""
        await self.page.evaluate("() => { document.querySelector('main').dataset.seen = '1'; }")
        await self.page.wait_for_function(
            "() => !document.querySelector('main').dataset.seen", timeout=15_000)
        return await self.values()


@asynccontextmanager
async def open_in_chromium(url: str, profile: Path) -> AsyncIterator[BrowserPage]:
    """`url` in Debian's headless Chromium with an empty profile (playwright drives it)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            hosts: set[str] = set()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))
            await page.goto(url)
            yield BrowserPage(page, errors, hosts)
        finally:
            await context.close()
