"""The report as one HTML file: inline CSS, inline SVG charts, the figures as JSON.

Nothing on the page is fetched: no script, font, image or style sheet comes from anywhere but
the file, so it shows the same offline, as a mail attachment or from an S3 link. Each panel is
a ``<section data-panel="<id>">``; the figures behind every chart are in
``<script type="application/json" id="sluice-report-data">`` (data, never run), with the
range, the totals and each panel's columns and rows, for a reader or a test to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import orjson

from worker.report.panels import Kind, Panel, Section

DATA_ELEMENT_ID = "sluice-report-data"
_TABLE_ROWS = 40

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;
background:#f4f6f8}
header{background:#1d3557;color:#fff;padding:20px 32px}
header h1{margin:0 0 4px;font-size:22px}header p{margin:0;opacity:.85}
main{padding:8px 32px 32px;max-width:1400px}
h2{margin:28px 0 12px;font-size:18px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin-top:20px}
.tile{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:22px}.tile span{color:#57606a;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:16px}
.panel{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);
overflow-x:auto}
.panel h3{margin:0;font-size:15px}.panel p.what{margin:2px 0 8px;color:#57606a;font-size:12px}
.panel p.empty{color:#57606a;font-style:italic;padding:24px 0}
table{border-collapse:collapse;font-size:12px;margin-top:6px}
td,th{padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left}td.n{text-align:right}
footer{color:#57606a;font-size:12px;padding:0 32px 24px}
"""


@dataclass(frozen=True, slots=True)
class PanelFigures:
    """A panel's rows (column names first), its SVG when it has rows, and a note when the
    panel could not be filled."""

    panel: Panel
    columns: list[str]
    rows: list[list[Any]]
    svg: str | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What the header and the data block say about the report as a whole."""

    title: str
    since: str
    until: str
    generated_at: str
    bucket_seconds: int
    source: dict[str, Any]
    totals: dict[str, Any]


_TILES = (("events", "events archived"), ("calls", "API calls"),
          ("error_rate", "API error rate"), ("customers", "customers"),
          ("unknown_key_calls", "calls with unknown keys"), ("dead_letters", "dead letters"))


def _tile(value: Any, label: str, key: str) -> str:
    if value is None:
        shown = "–"
    elif key == "error_rate":
        shown = f"{value:.1%}"
    else:
        shown = f"{value:,}"
    return (f'<div class="tile" data-total="{escape(key)}" data-value="{escape(str(value))}">'
            f"<b>{escape(shown)}</b><span>{escape(label)}</span></div>")


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{escape(str(value))}</td>"
    if isinstance(value, int | float):
        return f'<td class="n">{value:,}</td>' if isinstance(value, int) else \
            f'<td class="n">{value:,.4g}</td>'
    return f"<td>{escape(str(value))}</td>"


def _table(figures: PanelFigures) -> str:
    if figures.panel.x_kind is Kind.TIME or not figures.rows:
        return ""
    head = "".join(f"<th>{escape(name)}</th>" for name in figures.columns)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>"
                   for row in figures.rows[:_TABLE_ROWS])
    return f"<details><summary>Figures</summary><table><tr>{head}</tr>{body}</table></details>"


def _panel(figures: PanelFigures) -> str:
    panel = figures.panel
    if figures.svg:
        body = f'<div class="chart">{figures.svg}</div>'
    else:
        body = f'<p class="empty">{escape(figures.note or "No data in this range.")}</p>'
    return (f'<section class="panel" id="panel-{escape(panel.id)}" data-panel="{escape(panel.id)}"'
            f' data-rows="{len(figures.rows)}" data-chart="{panel.chart.value}">'
            f"<h3>{escape(panel.title)}</h3><p class=\"what\">{escape(panel.description)}</p>"
            f"{body}{_table(figures)}</section>")


def data_block(facts: PageFacts, panels: list[PanelFigures]) -> dict[str, Any]:
    """Everything the page shows, as data."""
    return {
        "version": 1, "title": facts.title, "since": facts.since, "until": facts.until,
        "generated_at": facts.generated_at, "bucket_seconds": facts.bucket_seconds,
        "source": facts.source, "totals": facts.totals,
        "panels": {figures.panel.id: {
            "title": figures.panel.title, "section": figures.panel.section.value,
            "x": figures.panel.x, "y": figures.panel.y, "colour": figures.panel.colour,
            "columns": figures.columns, "rows": figures.rows, "note": figures.note,
        } for figures in panels},
    }


def render_page(facts: PageFacts, panels: list[PanelFigures]) -> str:
    """The whole HTML document."""
    # `</` inside the JSON would end the script element early; `<\/` is the same JSON string.
    data = orjson.dumps(data_block(facts, panels)).decode().replace("</", "<\\/")
    sections = []
    for section in Section:
        chosen = [figures for figures in panels if figures.panel.section is section]
        if chosen:
            sections.append(f"<h2>{escape(section.value)}</h2><div class=\"grid\">"
                            + "".join(_panel(figures) for figures in chosen) + "</div>")
    tiles = "".join(_tile(facts.totals.get(key), label, key) for key, label in _TILES)
    source = facts.source
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(facts.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(facts.title)}</h1><p>{escape(facts.since)} to "
        f"{escape(facts.until)} (UTC) · built {escape(facts.generated_at)} from "
        f"s3://{escape(source.get('bucket', ''))}/{escape(source.get('prefix', ''))} "
        f"({source.get('objects', 0):,} objects)</p></header>"
        f"<main><div class=\"tiles\">{tiles}</div>{''.join(sections)}</main>"
        "<footer>Made by <code>sluice report</code>. Times are UTC; the figures behind the "
        f"charts are in the element #{DATA_ELEMENT_ID}.</footer>"
        f"<script type=\"application/json\" id=\"{DATA_ELEMENT_ID}\">{data}</script>"
        "</body></html>\n"
    )
