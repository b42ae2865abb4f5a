"""The document model as Parquet columns: one schema for every Parquet object Sluice writes.

Declared once, next to the document model (``worker.events.normalize`` builds the documents,
``worker.catalog.enrichment`` adds the catalog's fields), and used for every part, so each Parquet
file is self-contained with the same schema and any reader (Athena, DuckDB, pyarrow, the hourly
merge) can combine them.

Choices (what a query sees):

* ids, names and access-log text fields are ``string``;
* ``timestamp``, ``received_at``, ``sent_at``, ``original_timestamp`` are
  ``timestamp[ms, tz=UTC]`` (Parquet ``TIMESTAMP(MILLIS, isAdjustedToUTC=true)``): documents
  carry milliseconds, and Athena reads milliseconds and microseconds but not the nanoseconds
  pyarrow would otherwise pick;
* ``status`` and ``response_length`` are 64-bit integers (``bigint``): the normaliser accepts any
  integer that fits 64 bits (``worker.events.normalize``), so no accepted event can fail to convert;
* ``context``, ``properties``, ``traits``, ``integrations``, ``firehose_attributes`` and the
  record's ``headers`` (``worker.events.headers``) are JSON **text**, as sent: their keys
  differ per event and per customer, so a struct would need a schema per file (Quix Streams'
  way, which breaks merging and Athena's one table schema) and a ``map<string,string>`` would
  flatten nested values. Athena reaches inside with ``json_extract_scalar(properties,
  '$.plan')``, DuckDB with ``properties->>'$.plan'`` (README);
* the Kafka position is a struct ``kafka`` (``topic``, ``partition``, ``offset``,
  ``batch_index``), the same shape as in the NDJSON documents and the Athena table.

Every field a document can have is a column (``tests/unit/events/test_parquet_schema.py`` checks it
against documents of every input form): nothing is silently left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from worker.events import json_codec

TIMESTAMP = pa.timestamp("ms", tz="UTC")
KAFKA = pa.struct([
    pa.field("topic", pa.string()),
    pa.field("partition", pa.int32()),
    pa.field("offset", pa.int64()),
    pa.field("batch_index", pa.int32()),
])

_STRINGS = ("event_id", "type", "event", "name", "user_id", "anonymous_id", "group_id",
            "previous_id")
_TIMESTAMPS = ("timestamp", "received_at", "sent_at")
_PRODUCER_OBJECTS = ("context", "properties", "traits", "integrations")
_ACCESS_LOG_STRINGS = ("source_id", "request_id", "ip", "http_method", "resource_path", "path",
                       "protocol")
_ACCESS_LOG_INTEGERS = ("status", "response_length")
_MORE_ACCESS_LOG_STRINGS = ("api_id", "stage", "api_key_id", "user_agent")
_ENRICHMENT_STRINGS = ("customer_id", "customer_name", "usage_plan_id", "usage_plan_name",
                       "api_key_name")
# Columns that came later go last, so that files written before keep their column order (an
# hourly merge of old and new parts fills the new columns with nulls): the tracking API's
# original timestamp and source name; CloudWatch Logs' group, stream and a raw log event's text;
# the Firehose delivery stream and its common attributes; the record's headers.
_LATER_TIMESTAMPS = ("original_timestamp",)
_SOURCE_STRINGS = ("source_name", "log_group", "log_stream", "message", "firehose_source_arn")
JSON_COLUMNS = (*_PRODUCER_OBJECTS, "firehose_attributes", "headers")

SCHEMA = pa.schema(
    [pa.field(name, pa.string()) for name in _STRINGS]
    + [pa.field(name, TIMESTAMP) for name in _TIMESTAMPS]
    + [pa.field(name, pa.string()) for name in _PRODUCER_OBJECTS]
    + [pa.field(name, pa.string()) for name in _ACCESS_LOG_STRINGS]
    + [pa.field(name, pa.int64()) for name in _ACCESS_LOG_INTEGERS]
    + [pa.field(name, pa.string()) for name in _MORE_ACCESS_LOG_STRINGS]
    + [pa.field(name, pa.string()) for name in _ENRICHMENT_STRINGS]
    + [pa.field("enriched", pa.bool_()),
       pa.field("input_format", pa.string()),
       pa.field("kafka", KAFKA)]
    + [pa.field(name, TIMESTAMP) for name in _LATER_TIMESTAMPS]
    + [pa.field(name, pa.string()) for name in _SOURCE_STRINGS]
    + [pa.field("firehose_attributes", pa.string()),
       pa.field("headers", pa.string())]
)
COLUMN_NAMES = frozenset(SCHEMA.names)

log = logging.getLogger(__name__)
_unknown_fields_seen: set[str] = set()


def _columns(documents: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The documents' values per column (None where a document lacks the field).

    One pass over each document's own fields: documents have about half the columns, and this
    is about twice as fast as a ``get`` per column and document (measured: 1 µs an event)."""
    count = len(documents)
    columns: dict[str, list[Any]] = {name: [None] * count for name in SCHEMA.names}
    for index, document in enumerate(documents):
        for name, value in document.items():
            try:
                columns[name][index] = value
            except KeyError:
                _warn_unknown(name)
    return columns


def _warn_unknown(name: str) -> None:
    # Cannot happen while the schema covers the document model (a unit test checks it); if
    # the model grows without the schema, say so once instead of failing every part.
    if name not in _unknown_fields_seen:
        _unknown_fields_seen.add(name)
        log.warning("document field %r has no Parquet column (worker/events/parquet_schema.py): "
                    "it is "
                    "left out of Parquet objects", name)


def _json_texts(values: list[Any]) -> list[str | None]:
    dumps = orjson.dumps
    try:
        return [None if value is None else dumps(value).decode() for value in values]
    except TypeError:  # an integer beyond 64 bits: a second pass keeps its digits
        exact = json_codec.dumps
        return [None if value is None else exact(value).decode() for value in values]


def record_batch(documents: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """The documents as one record batch of SCHEMA (fields a document lacks are null)."""
    columns = _columns(documents)
    arrays: list[pa.Array] = []
    for field in SCHEMA:
        values = columns[field.name]
        if field.type == TIMESTAMP:
            # Normalised timestamps are UTC ISO-8601 with a Z: Arrow's own parser reads them
            # (twice the speed of datetime in Python).
            arrays.append(pa.array(values, pa.string()).cast(TIMESTAMP))
        elif field.name in JSON_COLUMNS:
            arrays.append(pa.array(_json_texts(values), pa.string()))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
