"""`sluice report`: the archive of a time range, and its dead letters, as one HTML file.

The steps: list the archive and keep the objects of the range (``archive``), fetch them
(``fetch``) and load their documents into DuckDB's ``events`` table once (``scan``), read the
range's dead letters (``letters``), run each panel's SQL over that table (``panels``), draw the
charts (``charts``) and write the page (``page``). The caller follows the steps through a
``Progress``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import duckdb

from worker.config import Settings
from worker.report.archive import list_archive, select_objects
from worker.report.charts import render_svg, warm_up
from worker.report.letters import create_letters_table, read_letter_rows
from worker.report.page import PageFacts, PanelFigures, render_page
from worker.report.panels import PANELS, Panel
from worker.report.scan import connect, load_events
from worker.report.window import Window

TOP = 15      # categories a ranking keeps
SERIES = 8    # coloured series a chart over time keeps (the rest are "(other)")

_TOTALS_SQL = """
SELECT count(*) AS events,
       count(*) FILTER (WHERE type = 'access_log') AS calls,
       count(*) FILTER (WHERE type = 'access_log' AND status >= 400) AS errors,
       count(DISTINCT customer) FILTER (WHERE enriched) AS customers,
       count(*) FILTER (WHERE type = 'access_log' AND enriched = false) AS unknown_key_calls,
       count(*) FILTER (WHERE type <> 'access_log') AS behaviour_events
FROM events
"""


class Progress(Protocol):
    """What the report tells its caller while it works."""

    def step(self, description: str, total: float | None = None, unit: str = "") -> None:
        """A new step begins; `total` is its amount of work in `unit` (``bytes``, ``panels``),
        when known."""

    def advance(self, amount: float) -> None:
        """Part of the current step is done."""


class _Silent:
    def step(self, description: str, total: float | None = None, unit: str = "") -> None:
        pass

    def advance(self, amount: float) -> None:
        pass


@dataclass
class ReportSummary:
    """What was written, from how much, and how long each step took (seconds)."""

    path: Path
    size: int
    events: int
    objects: int
    archive_bytes: int
    skipped_csv: int
    dead_letters: int
    dead_letters_problem: str | None
    seconds: dict[str, float] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON has it: times as UTC ISO-8601 text, decimals as floats."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, Decimal):
        return float(value)
    return value


def panel_rows(connection: duckdb.DuckDBPyConnection, panel: Panel,
               window: Window) -> tuple[list[str], list[list[Any]]]:
    """The panel's column names and rows for the window."""
    sql = panel.sql.format(bucket=window.bucket_sql, top=TOP, series=SERIES)
    cursor = connection.execute(sql)
    columns = [description[0] for description in cursor.description or []]
    return columns, [[_plain(value) for value in row] for row in cursor.fetchall()]


def totals(connection: duckdb.DuckDBPyConnection, dead_letters: int) -> dict[str, Any]:
    """The figures of the page's tiles."""
    cursor = connection.execute(_TOTALS_SQL)
    names = [description[0] for description in cursor.description or []]
    values = dict(zip(names, cursor.fetchone() or (), strict=True))
    calls = values["calls"]
    values["error_rate"] = round(values["errors"] / calls, 4) if calls else None
    values["dead_letters"] = dead_letters
    return values


def _figures(connection: duckdb.DuckDBPyConnection, panel: Panel, window: Window,
             letters_problem: str | None) -> PanelFigures:
    columns, rows = panel_rows(connection, panel, window)
    note = letters_problem if panel.table == "dead_letters" and letters_problem else None
    if not rows:
        return PanelFigures(panel, columns, rows, None, note)
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    domain = (_plain(window.since), _plain(window.until))
    return PanelFigures(panel, columns, rows, render_svg(panel, records, domain), note)


def build_report(settings: Settings, window: Window, output: Path,
                 progress: Progress | None = None, dead_letters: bool = True) -> ReportSummary:
    """Build the report of `window` and write it to `output`."""
    progress = progress or _Silent()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    # The chart renderer starts while the listing waits for S3 (it needs a second of CPU).
    renderer = threading.Thread(target=warm_up, name="chart-renderer-warm-up", daemon=True)
    renderer.start()
    progress.step(f"listing s3://{settings.s3_bucket}/{settings.s3_prefix}")
    selection = select_objects(asyncio.run(list_archive(settings)), window)
    seconds["list"] = time.perf_counter() - started

    mark = time.perf_counter()
    connection = connect()
    progress.step(f"reading {len(selection.objects):,} objects into DuckDB",
                  float(selection.bytes), "bytes")
    events = load_events(connection, settings, selection, window, progress.advance)
    seconds["scan"] = time.perf_counter() - mark

    mark = time.perf_counter()
    if dead_letters:
        progress.step(f"reading dead letters from {settings.dead_letter_topic_name}")
        letters = asyncio.run(read_letter_rows(settings, window))
    else:
        letters = None
    create_letters_table(connection, letters.rows if letters else [])
    problem = letters.problem if letters else "dead letters not read (--no-dead-letters)"
    seconds["dead_letters"] = time.perf_counter() - mark

    mark = time.perf_counter()
    progress.step("drawing charts", float(len(PANELS)), "panels")
    renderer.join()
    figures = []
    for panel in PANELS:
        figures.append(_figures(connection, panel, window, problem))
        progress.advance(1)
    seconds["charts"] = time.perf_counter() - mark

    letter_count = len(letters.rows) if letters else 0
    facts = PageFacts(
        title="Sluice usage report",
        since=window.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        until=window.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        bucket_seconds=int(window.bucket.total_seconds()),
        source={"bucket": settings.s3_bucket, "prefix": settings.s3_prefix,
                "objects": len(selection.objects), "bytes": selection.bytes,
                "skipped_csv_objects": selection.skipped_csv,
                "time_field": settings.s3_time_field.value,
                "dead_letter_topic": settings.dead_letter_topic_name,
                "dead_letters_problem": problem},
        totals=totals(connection, letter_count),
    )
    connection.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_page(facts, figures), encoding="utf-8")
    seconds["total"] = time.perf_counter() - started
    return ReportSummary(output, output.stat().st_size, events, len(selection.objects),
                         selection.bytes, selection.skipped_csv, letter_count,
                         problem if dead_letters else None, seconds)
