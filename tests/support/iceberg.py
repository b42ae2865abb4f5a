"""What the Iceberg tests read back: the table through pyiceberg and through DuckDB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

from worker.config import Settings
from worker.sinks.iceberg.client import load_table, open_catalog
from worker.sinks.iceberg.naming import RANGE_PREFIX
from worker.sinks.iceberg.offsets import summary_of


def iceberg_table(settings: Settings) -> Any:
    """The sink's table, freshly loaded."""
    return load_table(open_catalog(settings), settings)


def pyiceberg_ids(settings: Settings) -> Counter[str]:
    """How many rows each event_id has, as pyiceberg reads the table."""
    rows = iceberg_table(settings).scan(selected_fields=("event_id",)).to_arrow()
    return Counter(rows.column("event_id").to_pylist())


def pyiceberg_hours(settings: Settings) -> Counter[str]:
    """Rows per hour of `timestamp` (`HH`), as pyiceberg reads them."""
    rows = iceberg_table(settings).scan(selected_fields=("timestamp",)).to_arrow()
    return Counter(f"{moment.hour:02d}" for moment in rows.column("timestamp").to_pylist())


def duckdb_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB with httpfs and iceberg loaded and the local S3 server's secret."""
    import duckdb_ext  # namespace package of duckdb-ext-httpfs and duckdb-ext-iceberg

    connection = duckdb.connect()
    connection.execute("SET extension_directory = ?",
                       [str(Path(list(duckdb_ext.__path__)[0]) / "extensions")])
    connection.execute("LOAD httpfs")
    connection.execute("LOAD avro")
    connection.execute("LOAD iceberg")
    endpoint = (settings.s3_endpoint_url or "").split("://", 1)[-1]
    connection.execute(
        f"CREATE SECRET (TYPE s3, KEY_ID '{settings.aws_access_key_id}', "
        f"SECRET '{settings.aws_secret_access_key}', REGION '{settings.s3_region}', "
        f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false)")
    return connection


def duckdb_scan(settings: Settings) -> str:
    """`iceberg_scan(...)` of the table's current metadata file, as DuckDB reads a table
    without a catalog (Athena, Trino and Spark go through the catalog instead)."""
    return f"iceberg_scan('{iceberg_table(settings).metadata_location}')"


def snapshot_ranges(settings: Settings) -> list[dict[str, str]]:
    """Each snapshot's `sluice.offsets.*` ranges, oldest first."""
    table = iceberg_table(settings)
    return [{k: v for k, v in summary_of(s).items() if k.startswith(RANGE_PREFIX)}
            for s in table.snapshots()]
