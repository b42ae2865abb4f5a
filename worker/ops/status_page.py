"""The status page on the ops port (``/``): one self-contained HTML page that refreshes itself.

No external asset: the style and the script are inline, and the Content-Security-Policy
allows nothing else (no CDN, no font, no image; ``connect-src 'self'`` for the refresh). The
script fetches ``/?fragment=1`` every ``REFRESH_SECONDS`` and swaps the page's ``<main>`` for
it; without JavaScript, the page reloads itself (``<noscript>`` refresh). When the process
stops answering, the page says since when, and keeps the last values.

Every value is rendered from the samples ``/metrics`` shows at that moment (see
``worker.ops.status_views``); each value cell carries ``data-metric``, ``data-labels`` and
``data-value`` so a reader (or a test) can match it with a scrape.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from prometheus_client.registry import CollectorRegistry

from worker.ops.samples import Rates, RateTracker, Samples, read_samples
from worker.ops.status_views import Cell, StatusView, Table, ingest_view, worker_view

REFRESH_SECONDS = 2.0

ViewBuilder = Callable[[Samples, Rates, dict[str, str]], StatusView]
VIEWS: dict[str, ViewBuilder] = {"worker": worker_view, "ingest": ingest_view}

_SCRIPT = """
(function () {
  const every = Number(document.body.dataset.refreshMs);
  const stale = document.getElementById("stale");
  async function refresh() {
    try {
      const answer = await fetch(location.pathname + "?fragment=1", {cache: "no-store"});
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const main = document.querySelector("main");
      main.outerHTML = await answer.text();
      stale.hidden = true;
    } catch (error) {
      if (stale.hidden) {
        stale.textContent = "Not answering since " + new Date().toLocaleTimeString() +
          " (" + error.message + "): the values below are the last ones received.";
        stale.hidden = false;
      }
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
""".strip()

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2733;background:#f6f7f9}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.8rem;font-weight:600}
.ready{background:#d6f5e0;color:#14532d}.not-ready{background:#fde0dc;color:#7f1d1d}
#stale{background:#fff4ce;padding:.4rem .7rem;border-radius:.3rem}
table{border-collapse:collapse;background:#fff;min-width:28rem}
th,td{border:1px solid #dde1e6;padding:.25rem .6rem;text-align:left}
td.value,td.rate{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#5b6775}ul.problems{margin:.3rem 0}
""".strip()

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


class StatusPage:
    """The page of one process kind (``worker`` or ``ingest``), with its rate history."""

    def __init__(self, kind: Literal["worker", "ingest"]) -> None:
        self.kind = kind
        self._view = VIEWS[kind]
        self._rates = RateTracker()

    def view(self, registry: CollectorRegistry, problems: dict[str, str]) -> StatusView:
        """The page's records for the registry's samples now and the readiness problems."""
        samples = read_samples(registry)
        return self._view(samples, self._rates.observe(samples), problems)

    def render(self, registry: CollectorRegistry, problems: dict[str, str],
               fragment: bool = False) -> str:
        """The whole page, or only its ``<main>`` (what the refresh swaps in)."""
        main = render_main(self.view(registry, problems))
        return main if fragment else render_document(self.kind, main)


def render_document(kind: str, main: str) -> str:
    """The page around a rendered ``<main>``."""
    refresh_ms = int(REFRESH_SECONDS * 1000)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Sluice {_e(kind)} status</title>"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<noscript><meta http-equiv=\"refresh\" content=\"{int(REFRESH_SECONDS)}\"></noscript>"
        f"<style>{_STYLE}</style></head>"
        f"<body data-refresh-ms=\"{refresh_ms}\">"
        "<p id=\"stale\" role=\"status\" hidden></p>"
        f"{main}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def render_main(view: StatusView) -> str:
    """The ``<main>`` element: readiness, then the tables."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    badge = ("<span class=\"badge ready\">ready</span>" if view.ready
             else "<span class=\"badge not-ready\">not ready</span>")
    parts = [
        f"<main data-ready=\"{str(view.ready).lower()}\">",
        f"<h1>{_e(view.title)} {badge}</h1>",
        f"<p class=\"muted\">Updated {_e(stamp)}; every {REFRESH_SECONDS:g} s. "
        "The same numbers as <a href=\"/metrics\">/metrics</a>; "
        "readiness as <a href=\"/health/ready\">/health/ready</a>.</p>",
    ]
    if view.problems:
        parts.append("<h2>Why it is not ready</h2><ul class=\"problems\">")
        parts.extend(f"<li data-check=\"{_e(check)}\"><b>{_e(check)}</b>: {_e(reason)}</li>"
                     for check, reason in sorted(view.problems.items()))
        parts.append("</ul>")
    parts.extend(render_table(table) for table in view.tables)
    parts.append("</main>")
    return "".join(parts)


def render_table(table: Table) -> str:
    """One titled table (or its `empty` sentence)."""
    out = [f"<section><h2>{_e(table.title)}</h2>"]
    if not table.rows:
        out.append(f"<p class=\"muted\">{_e(table.empty)}</p>")
    else:
        head = "".join(f"<th>{_e(column)}</th>" for column in table.columns)
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
        for row in table.rows:
            out.append("<tr>" + "".join(render_cell(cell) for cell in row) + "</tr>")
        out.append("</tbody></table>")
    if table.note:
        out.append(f"<p>{_e(table.note)}</p>")
    out.append("</section>")
    return "".join(out)


def render_cell(cell: Cell) -> str:
    """A ``<td>``; a value or rate names its sample in data attributes."""
    if cell.metric is None:
        return f"<td>{_e(cell.text)}</td>"
    labels = ",".join(f"{name}={value}" for name, value in cell.labels)
    number = "" if cell.value is None else repr(float(cell.value))
    return (f"<td class=\"{cell.kind}\" data-metric=\"{_e(cell.metric)}\" "
            f"data-labels=\"{_e(labels)}\" data-value=\"{number}\">{_e(cell.text)}</td>")


def _e(text: str) -> str:
    return html.escape(text, quote=True)
