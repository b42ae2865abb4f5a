"""`sluice report` end to end: a worker's archive and a generated month of access logs (a
million events, NDJSON and Parquet, hive and segment layouts, hourly objects and parts), the
report written by the command, opened in headless chromium with the network off.

The figures the page carries must be those DuckDB finds when it reads the bucket on its own
(counts per usage plan, per customer, per status class); every panel with figures must show a
drawn chart; nothing may be fetched and nothing logged as an error.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.archive_month import CUSTOMERS, duckdb_on_the_bucket, month_start, write_month
from tests.support.browser import OpenedReport, open_report, pixel_spread, require_chromium
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.catalog.entries import CatalogEntry, publish_entries
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.local.produce import produce, synthetic_records
from worker.local.samples import DEMO_CATALOG, SAMPLE_FORMS
from worker.report.panels import NOT_IN_CATALOG, PANELS
from worker.sinks.s3.sink import preflight

pytestmark = pytest.mark.e2e

BEHAVIOUR_AND_PIPELINE = ("events_by_type", "top_events", "daily_active_users", "top_pages",
                          "sources", "dead_letters", "archived_per_hour")


def _run_report(settings: Settings, tmp_path: Path, name: str, *options: str) -> Path:
    output = tmp_path / f"{name}.html"
    command = SluiceProcess(settings, ["report", *options, "--output", str(output)],
                            tmp_path / f"{name}.log")
    assert command.process.wait(timeout=240) == 0, command.log()[-3000:]
    assert "report: " in command.log()
    return output


def _archive_worker_run(settings: Settings, tmp_path: Path) -> None:
    """Sample traffic of every form (5 % malformed) through a worker into the bucket."""
    asyncio.run(ensure_topics(settings))
    asyncio.run(publish_entries(settings, [CatalogEntry.model_validate(entry)
                                           for entry in DEMO_CATALOG]))
    records = synthetic_records(300, SAMPLE_FORMS, 0.05, settings.max_record_bytes, seed=29)
    asyncio.run(produce(settings, records))
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    try:
        asyncio.run(wait_for_no_lag(settings, worker))
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


def _independent_counts(settings: Settings, since: datetime, until: datetime
                        ) -> dict[str, Counter[str]]:
    """Counts per usage plan, customer and status class, by DuckDB alone over every object of
    the bucket (httpfs, globs of both formats, no object selection or fetching of the
    report's)."""
    connection = duckdb_on_the_bucket(settings)
    base = f"s3://{settings.s3_bucket}/{settings.s3_prefix}**/*"
    fields = ("SELECT timestamp::TIMESTAMPTZ AS ts, type, usage_plan_name, customer_name, "
              "status FROM ")
    readers = {f"{base}.ndjson.gz": "read_json('{}', format = 'newline_delimited', "
                                    "union_by_name = true)",
               f"{base}.parquet": "read_parquet('{}', union_by_name = true)"}
    sources = [fields + reader.format(pattern) for pattern, reader in readers.items()
               if connection.execute("SELECT count(*) FROM glob(?)", [pattern]).fetchone()[0]]
    rows = connection.execute(
        f"WITH documents AS ({' UNION ALL BY NAME '.join(sources)}) "
        f"SELECT coalesce(usage_plan_name, '{NOT_IN_CATALOG}'), "
        f"coalesce(customer_name, '{NOT_IN_CATALOG}'), (status // 100) || 'xx' "
        "FROM documents WHERE type = 'access_log' AND ts >= ? AND ts < ?",
        [since, until]).fetchall()
    connection.close()
    return {"plan": Counter(plan for plan, _, _ in rows),
            "customer": Counter(customer for _, customer, _ in rows),
            "status": Counter(status for _, _, status in rows)}


def _figures(opened: OpenedReport, panel: str) -> list[dict[str, Any]]:
    block = opened.data["panels"][panel]
    return [dict(zip(block["columns"], row, strict=True)) for row in block["rows"]]


def _report_counts(opened: OpenedReport) -> dict[str, Counter[str]]:
    customers: Counter[str] = Counter()
    for row in _figures(opened, "top_customers"):
        customers[row["customer"]] += row["events"]
    return {"plan": Counter({row["plan"]: row["events"]
                             for row in _figures(opened, "plan_share")}),
            "customer": customers,
            "status": Counter({row["status_class"]: row["events"]
                               for row in _figures(opened, "status_classes")})}


def _assert_seen_offline_and_drawn(opened: OpenedReport, report: Path) -> None:
    assert [url for url in opened.requests if url != report.resolve().as_uri()] == []
    assert opened.console_errors == []
    assert set(opened.panels) == {panel.id for panel in PANELS}
    for panel, rows in opened.panels.items():
        if rows:
            variance, colours = pixel_spread(opened.screenshots[panel])
            assert variance > 100 and colours > 20, (panel, variance, colours)
        else:
            assert panel not in opened.screenshots


def test_report_of_a_month_and_of_a_worker_run_matches_duckdb_offline_in_chromium(
    s3_settings: Settings, tmp_path: Path,
) -> None:
    require_chromium()
    settings = s3_settings.model_copy(update={"s3_part_max_age": 1.0})
    asyncio.run(preflight(settings))
    _archive_worker_run(settings, tmp_path)

    # The worker's run: behaviour events, dead letters, and its access logs (one unknown key).
    report = _run_report(settings, tmp_path, "recent", "--since", "3h")
    opened = open_report(report)
    _assert_seen_offline_and_drawn(opened, report)
    for panel in BEHAVIOUR_AND_PIPELINE:
        assert opened.panels[panel] > 0, panel
    assert _report_counts(opened) == _independent_counts(
        settings, datetime.fromisoformat(opened.data["since"]),
        datetime.fromisoformat(opened.data["until"]))
    letters = Counter({(row["stage"], row["error_class"]): row["letters"]
                       for row in _figures(opened, "dead_letters")})
    assert sum(letters.values()) == opened.data["totals"]["dead_letters"] > 0
    assert {stage for stage, _ in letters} == {"decode"}

    # The month: access logs only, every format and layout.
    start = month_start()
    month = asyncio.run(write_month(settings, start))
    assert month.objects > 2000  # hourly objects and parts of 2 partitions, 30 days
    report = _run_report(settings, tmp_path, "month", "--since", start.isoformat(),
                         "--until", month.end.isoformat())
    assert report.stat().st_size < 2 * 1024 * 1024
    opened = open_report(report)
    _assert_seen_offline_and_drawn(opened, report)
    assert opened.data["totals"]["events"] == opened.data["totals"]["calls"] == 1_000_000
    expected = _independent_counts(settings, start, month.end)
    assert _report_counts(opened) == expected
    assert set(expected["customer"]) == {name for name, _, _ in CUSTOMERS} | {NOT_IN_CATALOG}
    assert {row["api_key_id"] for row in _figures(opened, "unknown_keys")} == {
        "key-stolen-1", "key-retired-2"}
