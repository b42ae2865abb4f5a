"""Charts as SVG, drawn at build time: a Vega-Lite specification per panel, rendered by
vl-convert (Vega's own renderer in an embedded JavaScript engine, no browser and no network).

Why SVG drawn at build time (``bench/report_charts.py`` measures the choices on a month's
panels): the page then needs no script at all, so it shows the same in a browser, a mail
client that blocks scripts, or from an S3 link, and it cannot fail at view time; its charts
add about 20 KB each. Plotly's inlined library alone is 4.6 MB, past the report's 2 MB;
ECharts' is 1.1 MB and draws in the browser (a script to run, and to break).
"""

from __future__ import annotations

import re
from typing import Any

from worker.report.panels import Chart, Kind, Panel

WIDTH = 640
HEIGHT = 220
BAR_STEP = 18

# Status classes keep their colours across charts: success green, client errors orange,
# server errors red.
STATUS_COLOURS = {"domain": ["1xx", "2xx", "3xx", "4xx", "5xx"],
                  "range": ["#9aa5b1", "#2e8b57", "#4c78a8", "#f58518", "#d62728"]}

_VEGA_TYPES = {Kind.TIME: "temporal", Kind.NUMBER: "quantitative", Kind.CATEGORY: "nominal"}
_ID = re.compile(r'\bid="([^"]+)"')


def _encoding(panel: Panel, field: str, kind: Kind, title: str) -> dict[str, Any]:
    channel: dict[str, Any] = {"field": field, "type": _VEGA_TYPES[kind], "title": title}
    if kind is Kind.TIME:
        channel["scale"] = {"type": "utc"}
    if kind is Kind.NUMBER and field.endswith("rate"):
        channel["axis"] = {"format": ".1%"}
    return channel


def specification(panel: Panel, rows: list[dict[str, Any]],
                  time_domain: tuple[str, str] | None = None) -> dict[str, Any]:
    """The panel's Vega-Lite specification with its rows inlined; a time axis spans
    `time_domain` (the report's range, as UTC ISO-8601 text like the rows' times) when given,
    so a quiet stretch shows as one."""
    x = _encoding(panel, panel.x, panel.x_kind, panel.x.replace("_", " "))
    if panel.x_kind is Kind.TIME and time_domain:
        # A bucket may start before the range (a day's starts at midnight): the axis starts
        # with the earliest, or its point would fall outside the chart.
        start = min([time_domain[0], *(str(row[panel.x]) for row in rows)])
        x["scale"]["domain"] = [start, time_domain[1]]
    y = _encoding(panel, panel.y, panel.y_kind, panel.y.replace("_", " "))
    encoding: dict[str, Any] = {"x": x, "y": y}
    mark: dict[str, Any]
    if panel.chart is Chart.HBAR:
        y["sort"] = "-x"
        mark = {"type": "bar"}
    elif panel.chart is Chart.BAR:
        mark = {"type": "bar"}
    elif panel.chart is Chart.AREA:
        mark = {"type": "area", "interpolate": "monotone"}
    elif panel.chart is Chart.STEP:
        mark = {"type": "area", "interpolate": "step-after", "line": True}
    else:
        mark = {"type": "line", "point": len(rows) <= 60}
    if panel.colour:
        encoding["color"] = {"field": panel.colour, "type": "nominal",
                             "title": panel.colour.replace("_", " ")}
        if panel.colour == "status_class":
            encoding["color"]["scale"] = STATUS_COLOURS
    height: Any = {"step": BAR_STEP} if panel.chart is Chart.HBAR else HEIGHT
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": WIDTH,
        "height": height,
        "data": {"values": rows},
        "mark": mark,
        "encoding": encoding,
        "config": {"font": "sans-serif", "view": {"stroke": None},
                   "axis": {"labelLimit": 260}},
    }


def warm_up() -> None:
    """Start the renderer's JavaScript engine (about a second, once per process) with a chart
    of nothing: called beside the listing and the scan, so that the first panel does not wait
    for it."""
    import vl_convert

    vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": []}})


def render_svg(panel: Panel, rows: list[dict[str, Any]],
               time_domain: tuple[str, str] | None = None) -> str:
    """The panel as an SVG element."""
    import vl_convert

    return own_ids(vl_convert.vegalite_to_svg(specification(panel, rows, time_domain)),
                   panel.id)


def own_ids(svg: str, prefix: str) -> str:
    """The SVG with its ids (and the references to them) prefixed: many SVGs share one page,
    and a renderer that numbers clip paths or gradients the same way in each would make one
    chart use another's."""
    for name in set(_ID.findall(svg)):
        svg = (svg.replace(f'id="{name}"', f'id="{prefix}-{name}"')
               .replace(f"url(#{name})", f"url(#{prefix}-{name})")
               .replace(f'href="#{name}"', f'href="#{prefix}-{name}"'))
    return svg
