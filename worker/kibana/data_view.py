"""The ``events-*`` data view, and the fields the dashboard's panels read from it.

Every column of the report's ``events`` table (``worker.report.panels.COLUMNS``) is a field of
the data view: a plain column is its Elasticsearch document field (``Column.document``), a
derived one a runtime field of the same name whose Painless script is the column's
``painless`` (``person``, ``page``, ``source``, ``endpoint``, ``status_class``). Kibana sends the
data view's runtime fields with every search as ``runtime_mappings``, so the panels split by
them as by any keyword field, computed at query time, with nothing added to the index mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from worker.config import Settings
from worker.report.panels import COLUMNS, NOT_IN_CATALOG, Column

DATA_VIEW_ID = "sluice-events"

# The report's column types (DuckDB) as runtime field types and as Lens data types.
_RUNTIME_TYPES = {"VARCHAR": "keyword", "BIGINT": "long", "INTEGER": "long",
                  "BOOLEAN": "boolean", "TIMESTAMPTZ": "date", "DOUBLE": "double"}
_LENS_TYPES = {"keyword": "string", "long": "number", "double": "number", "boolean": "boolean",
               "date": "date"}


@dataclass(frozen=True)
class Field:
    """A field of the data view as a panel reads it."""

    name: str  # the document field, or the runtime field's name
    data_type: str  # Lens's: string, number, boolean, date
    runtime: bool
    # The report names the documents without a value (a key not in the catalog has no
    # customer): Kibana then counts them as its missing bucket instead of leaving them out.
    counts_missing: bool = False


def data_view_pattern(settings: Settings) -> str:
    """The data view's index pattern: ``events-%Y.%m.%d`` → ``events-*``; a fixed index or
    data stream name as it is."""
    index = settings.elasticsearch_index
    return index.split("%", 1)[0] + "*" if "%" in index else index


def time_field(settings: Settings) -> str:
    """``@timestamp`` in a data stream (Sluice adds it there), else the event's ``timestamp``."""
    return "@timestamp" if settings.elasticsearch_data_stream else "timestamp"


def field(column_name: str) -> Field:
    """The data view's field for a column of the report's ``events`` table."""
    column = _column(column_name)
    kind = _runtime_type(column)
    if column.painless is not None:
        return Field(column.name, _LENS_TYPES[kind], runtime=True)
    if column.document is None:
        raise ValueError(f"column {column.name!r} names neither a document field nor Painless")
    return Field(column.document, _LENS_TYPES[kind], runtime=False,
                 counts_missing=f"'{NOT_IN_CATALOG}'" in column.sql)


def runtime_fields(columns: tuple[Column, ...] = COLUMNS) -> dict[str, dict[str, Any]]:
    """The data view's ``runtimeFieldMap``: one runtime field per derived column."""
    return {column.name: {"type": _runtime_type(column), "script": {"source": column.painless}}
            for column in columns if column.painless is not None}


def data_view_attributes(settings: Settings) -> dict[str, Any]:
    """The ``index-pattern`` saved object's attributes (its maps are JSON text, as Kibana
    stores them), the time field the events' time."""
    return {
        "title": data_view_pattern(settings),
        "name": "Sluice events",
        "timeFieldName": time_field(settings),
        "fields": "[]",  # Kibana reads the mapped fields from the indices
        "fieldFormatMap": "{}",
        "runtimeFieldMap": orjson.dumps(runtime_fields()).decode(),
        "typeMeta": "{}",
    }


def _column(name: str) -> Column:
    for column in COLUMNS:
        if column.name == name:
            return column
    raise KeyError(f"the report has no column {name!r}")


def _runtime_type(column: Column) -> str:
    try:
        return _RUNTIME_TYPES[column.type]
    except KeyError:
        raise ValueError(f"column {column.name!r}: no Elasticsearch type for {column.type}") \
            from None
