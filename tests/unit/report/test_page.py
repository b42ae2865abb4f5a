import re

import orjson

from worker.report.charts import own_ids, render_svg, specification
from worker.report.page import DATA_ELEMENT_ID, PageFacts, PanelFigures, render_page
from worker.report.panels import panel

FACTS = PageFacts("Sluice usage report", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z",
                  "2026-11-02T00:00:05Z", 900, {"bucket": "b", "prefix": "logs/", "objects": 2},
                  {"events": 3, "calls": 2, "error_rate": 0.5, "customers": 1,
                   "unknown_key_calls": 1, "dead_letters": 0})
ROWS = [["Acme </script><b>", "2xx", 2], ["Globex", "5xx", 1]]


def _figures() -> list[PanelFigures]:
    top = panel("top_customers")
    records = [dict(zip(["customer", "status_class", "events"], row, strict=True))
               for row in ROWS]
    return [PanelFigures(top, ["customer", "status_class", "events"], ROWS,
                         render_svg(top, records)),
            PanelFigures(panel("dead_letters"), ["stage", "error_class", "letters"], [], None,
                         "the dead-letter topic could not be read")]


def _data(html: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>',
                      html, re.S)
    assert match
    return orjson.loads(match.group(1))


def test_the_page_carries_every_figure_as_data_even_text_that_looks_like_markup() -> None:
    html = render_page(FACTS, _figures())
    data = _data(html)
    assert data["panels"]["top_customers"]["rows"] == ROWS
    assert data["panels"]["dead_letters"]["note"] == "the dead-letter topic could not be read"
    assert data["totals"]["events"] == 3 and data["since"] == "2026-11-01T00:00:00Z"
    assert "Acme &lt;/script&gt;&lt;b&gt;" in html  # the table cell, escaped


def test_the_page_fetches_nothing_and_runs_no_script() -> None:
    html = render_page(FACTS, _figures())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    assert re.findall(r"<script[^>]*>", html) == [
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">']


def test_a_panel_without_rows_says_why_instead_of_an_empty_chart() -> None:
    html = render_page(FACTS, _figures())
    section = html[html.index('data-panel="dead_letters"'):]
    assert 'data-rows="0"' in section[:80]
    assert "the dead-letter topic could not be read" in section
    assert "<svg" not in section[:section.index("</section>")]


def test_svg_ids_are_the_panels_own_so_that_charts_on_one_page_do_not_clash() -> None:
    svg = ('<svg><defs><clipPath id="clip1"><rect/></clipPath></defs>'
           '<g clip-path="url(#clip1)"><use href="#clip1"/></g></svg>')
    assert own_ids(svg, "top_pages") == (
        '<svg><defs><clipPath id="top_pages-clip1"><rect/></clipPath></defs>'
        '<g clip-path="url(#top_pages-clip1)"><use href="#top_pages-clip1"/></g></svg>')


def test_rankings_are_sorted_by_value_and_status_classes_keep_their_colours() -> None:
    spec = specification(panel("top_customers"), [])
    assert spec["encoding"]["y"]["sort"] == "-x"
    assert spec["encoding"]["color"]["scale"]["domain"][1] == "2xx"
    assert spec["encoding"]["x"]["type"] == "quantitative"


def test_a_time_axis_spans_the_whole_range_so_a_quiet_stretch_shows() -> None:
    spec = specification(panel("calls_by_plan"), [], ("2026-11-01T00:00:00Z",
                                                      "2026-11-02T00:00:00Z"))
    assert spec["encoding"]["x"]["scale"] == {
        "type": "utc", "domain": ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"]}
    assert "domain" not in specification(panel("top_customers"), [],
                                         ("a", "b"))["encoding"]["x"].get("scale", {})


def test_a_daily_bucket_that_starts_before_the_range_stays_on_the_axis() -> None:
    rows = [{"day": "2026-11-01T00:00:00Z", "users": 3}]
    spec = specification(panel("daily_active_users"), rows, ("2026-11-01T09:00:00Z",
                                                             "2026-11-01T12:00:00Z"))
    assert spec["encoding"]["x"]["scale"]["domain"] == ["2026-11-01T00:00:00Z",
                                                        "2026-11-01T12:00:00Z"]
