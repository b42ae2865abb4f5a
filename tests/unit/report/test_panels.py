from datetime import UTC, datetime

import duckdb
import pytest

from worker.report.letters import create_letters_table
from worker.report.panels import COLUMN_NAMES, COLUMNS, PANELS, Chart, Kind, Section, panel
from worker.report.scan import create_events_table

ROWS = [
    ("2026-11-22 10:00:00+00", "access_log", None, None, None, None, "Acme Corp", "Gold",
     "key-acme", True, "GET /v1/orders", 200, "2xx", 500),
    ("2026-11-22 11:00:00+00", "access_log", None, None, None, None, "(not in the catalog)",
     "(not in the catalog)", "key-who", False, "GET /v1/orders", 503, "5xx", 5000),
    ("2026-11-22 11:30:00+00", "page", None, "u1", "/pricing", "web", None, None, None, None,
     None, None, None, None),
    ("2026-11-23 09:00:00+00", "track", "Signed Up", "u2", None, "analytics.js", None, None, None,
     None, None, None, None, None),
]


@pytest.fixture
def tables() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    create_events_table(connection)
    connection.executemany(f"INSERT INTO events VALUES ({', '.join('?' * len(COLUMNS))})", ROWS)
    create_letters_table(connection, [("2026-11-22 10:00:00+00", "decode", "InvalidJson", False)])
    return connection


def test_panel_ids_are_unique_and_every_section_has_panels() -> None:
    assert len({p.id for p in PANELS}) == len(PANELS)
    assert {p.section for p in PANELS} == set(Section)
    assert panel("top_customers").chart is Chart.HBAR


@pytest.mark.parametrize("definition", PANELS, ids=lambda p: p.id)
def test_every_panel_returns_its_named_columns(definition, tables) -> None:  # noqa: ANN001
    sql = definition.sql.format(bucket="INTERVAL 3600 SECOND", top=15, series=8)
    cursor = tables.execute(sql)
    columns = [name for name, *_ in cursor.description]
    named = [definition.x, definition.y] + ([definition.colour] if definition.colour else [])
    assert set(named) <= set(columns)
    assert cursor.fetchall(), "no rows from the sample"
    if definition.chart is Chart.HBAR:
        assert definition.y_kind is Kind.CATEGORY and definition.x_kind is Kind.NUMBER


@pytest.mark.parametrize("definition", PANELS, ids=lambda p: p.id)
def test_every_panel_names_fields_kibana_can_use(definition) -> None:  # noqa: ANN001
    assert set(definition.fields) <= set(COLUMN_NAMES)
    assert definition.metric


def test_every_column_comes_from_a_document_field_or_a_runtime_field() -> None:
    for column in COLUMNS:
        assert (column.document is None) != (column.painless is None), column.name


def test_over_time_keeps_the_largest_series_and_sums_the_rest(tables) -> None:  # noqa: ANN001
    sql = panel("calls_by_customer").sql.format(bucket="INTERVAL 1 DAY", top=15, series=1)
    day = datetime(2026, 11, 22, tzinfo=UTC)
    assert [(time.astimezone(UTC), series, events)
            for time, series, events in tables.execute(sql).fetchall()] == [
        (day, "(not in the catalog)", 1), (day, "(other)", 1)]
