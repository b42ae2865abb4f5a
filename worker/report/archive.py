"""The S3 archive as the report reads it: which objects cover the range, and DuckDB loading
their documents into the ``events`` table (``worker.report.panels.COLUMNS``).

Objects are found by listing ``SLUICE_S3_PREFIX`` (Sluice's own ``_sluice/`` keys left out) and
kept when their directory's time overlaps the range: ``year=/month=/day=/hour=/`` (``hive``) is
an hour, ``segment-logs/<source>/<received_day>/`` (``segment``) and ``YYYY-MM-DD/`` (``{date}``)
a day; a directory that names no time (a template of your own) is always read. Whether an
object is an hourly merge or one of many parts makes no difference: each is a complete file.
gzip NDJSON (``.ndjson.gz``) and Parquet (``.parquet``) objects are read, in any mix; gzip CSV
objects hold the columns their writer chose (SLUICE_S3_CSV_COLUMNS), so they are counted and
skipped. Rows are kept when their filing time (SLUICE_S3_TIME_FIELD, the field the directories
are made from) lies in the range.

DuckDB reads ``s3://`` through its ``httpfs`` extension: from the ``duckdb-ext-httpfs`` package
when it is installed (no download), else DuckDB installs it itself where it can reach the
internet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from worker.config import Settings
from worker.report.panels import COLUMNS
from worker.report.window import Window
from worker.sinks.s3.client import make_client_context

NDJSON = ".ndjson.gz"
PARQUET = ".parquet"
CSV = ".csv.gz"

_HIVE = re.compile(r"(?:^|/)year=(\d{4})/month=(\d{2})/day=(\d{2})/(?:hour=(\d{2})/)?")
_RECEIVED_DAY = re.compile(r"(?:^|/)(\d{13})/")
_DATE = re.compile(r"(?:^|/)(\d{4})-(\d{2})-(\d{2})/")

# How many bytes of objects one DuckDB statement reads: the progress bar moves once per
# statement, and DuckDB still reads the objects of a statement in parallel.
CHUNK_BYTES = 24 * 1024 * 1024
CHUNK_OBJECTS = 400

# The document fields NDJSON objects are read with (the columns' SQL uses these); a document
# without one reads as null. Parquet objects have these columns by their schema. DuckDB's JSON
# reader costs about the same per field it extracts (a month: 22 fields 3.8 s of CPU, 5 fields
# 2.0 s), so only the fields a column needs are named.
_NDJSON_FIELDS = {
    "type": "VARCHAR", "event": "VARCHAR", "name": "VARCHAR", "user_id": "VARCHAR",
    "anonymous_id": "VARCHAR", "timestamp": "VARCHAR", "received_at": "VARCHAR",
    "context": "JSON", "properties": "JSON", "source_id": "VARCHAR", "input_format": "VARCHAR",
    "customer_id": "VARCHAR", "customer_name": "VARCHAR", "usage_plan_id": "VARCHAR",
    "usage_plan_name": "VARCHAR", "api_key_id": "VARCHAR", "enriched": "BOOLEAN",
    "http_method": "VARCHAR", "resource_path": "VARCHAR", "status": "BIGINT",
    "response_length": "BIGINT",
}


class ArchiveError(Exception):
    """The archive cannot be read; the message names the setting to check."""


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    """An object of the archive the report reads."""

    key: str
    size: int

    @property
    def format(self) -> str | None:
        for extension in (NDJSON, PARQUET, CSV):
            if self.key.endswith(extension):
                return extension
        return None


@dataclass(frozen=True, slots=True)
class Selection:
    """The objects of the range, and what was left out."""

    objects: tuple[ArchiveObject, ...]
    skipped_csv: int
    listed: int

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.objects)


def directory_span(key: str) -> tuple[datetime, datetime] | None:
    """The time an object's directory stands for, or None when its directory names no time."""
    hive = _HIVE.search(key)
    if hive:
        year, month, day, hour = hive.groups()
        start = datetime(int(year), int(month), int(day), int(hour or 0), tzinfo=UTC)
        return start, start + (timedelta(hours=1) if hour else timedelta(days=1))
    received_day = _RECEIVED_DAY.search(key)
    if received_day:
        start = datetime.fromtimestamp(int(received_day.group(1)) / 1000, UTC)
        return start, start + timedelta(days=1)
    date = _DATE.search(key)
    if date:
        start = datetime(*(int(part) for part in date.groups()), tzinfo=UTC)
        return start, start + timedelta(days=1)
    return None


def select_objects(listing: Sequence[ArchiveObject], window: Window) -> Selection:
    """The listed objects a report of `window` must read."""
    chosen, csv = [], 0
    for item in listing:
        span = directory_span(item.key)
        if span is not None and not window.overlaps(*span):
            continue
        if item.format in (NDJSON, PARQUET):
            chosen.append(item)
        elif item.format == CSV:
            csv += 1
    return Selection(tuple(chosen), csv, len(listing))


async def list_archive(settings: Settings) -> list[ArchiveObject]:
    """Every object under SLUICE_S3_PREFIX but Sluice's own bookkeeping (``_sluice/``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    own = f"{settings.s3_prefix}_sluice/"
    found: list[ArchiveObject] = []
    try:
        async with make_client_context(settings) as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=settings.s3_bucket,
                                                 Prefix=settings.s3_prefix):
                found += [ArchiveObject(item["Key"], item["Size"])
                          for item in page.get("Contents", [])
                          if not item["Key"].startswith(own)]
    except (BotoCoreError, ClientError) as error:
        raise ArchiveError(
            f"cannot list s3://{settings.s3_bucket}/{settings.s3_prefix}: {error}; check "
            "SLUICE_S3_BUCKET, SLUICE_S3_PREFIX, SLUICE_S3_ENDPOINT_URL and the credentials "
            "(SLUICE_AWS_ACCESS_KEY_ID / SLUICE_AWS_SECRET_ACCESS_KEY or the AWS chain)"
        ) from error
    return found


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads the bucket with the worker's S3 settings, in UTC."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    # Reading many small objects waits on S3 requests more than on the CPU: more threads than
    # cores keep more requests going (a month of 2,400 objects: 30 % faster at 16 than at 2).
    connection.execute("SET threads = 16")
    _load_httpfs(connection)
    # A busy S3 server may refuse a connection now and then: retried with backoff, as
    # botocore's standard mode would (DuckDB's default is 3 tries, 100 ms apart).
    connection.execute("SET http_retries = 8")
    connection.execute("SET http_retry_wait_ms = 200")
    connection.execute("SET http_retry_backoff = 2")
    connection.execute(_secret_sql(settings))
    return connection


def _load_httpfs(connection: duckdb.DuckDBPyConnection) -> None:
    try:
        import duckdb_ext  # the duckdb-ext-httpfs package: httpfs for exactly this duckdb
    except ImportError:
        connection.execute("INSTALL httpfs")
    else:
        connection.execute("SET extension_directory = ?",
                           [str(Path(list(duckdb_ext.__path__)[0]) / "extensions")])
    connection.execute("LOAD httpfs")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _secret_sql(settings: Settings) -> str:
    options = [f"REGION {_quote(settings.s3_region)}"]
    if settings.aws_access_key_id:
        options += [f"KEY_ID {_quote(settings.aws_access_key_id)}",
                    f"SECRET {_quote(settings.aws_secret_access_key or '')}"]
    else:
        options.append("PROVIDER credential_chain")
    if settings.s3_endpoint_url:
        scheme, _, host = settings.s3_endpoint_url.partition("://")
        options += [f"ENDPOINT {_quote(host.rstrip('/'))}",
                    f"USE_SSL {'true' if scheme == 'https' else 'false'}"]
    style = "path" if settings.s3_addressing_style_for_endpoint == "path" else "vhost"
    options.append(f"URL_STYLE '{style}'")
    return f"CREATE SECRET archive (TYPE s3, {', '.join(options)})"


def create_events_table(connection: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f"{column.name} {column.type}" for column in COLUMNS)
    connection.execute(f"CREATE TABLE events ({columns})")


def _select_sql(source: str, time_field: str) -> str:
    expressions = ", ".join(f"{column.sql.format(time_field=time_field)} AS {column.name}"
                            for column in COLUMNS)
    return f"SELECT {expressions} FROM {source}"


def _source_sql(urls: list[str], extension: str) -> str:
    files = "[" + ", ".join(_quote(url) for url in urls) + "]"
    if extension == PARQUET:
        return f"read_parquet({files}, union_by_name = true)"
    fields = "{" + ", ".join(f"{_quote(name)}: {_quote(kind)}"
                             for name, kind in _NDJSON_FIELDS.items()) + "}"
    return (f"read_json({files}, format = 'newline_delimited', compression = 'gzip', "
            f"columns = {fields})")


def chunks(objects: Sequence[ArchiveObject]) -> list[list[ArchiveObject]]:
    """Objects of one format grouped for one statement each (CHUNK_BYTES, CHUNK_OBJECTS)."""
    groups: list[list[ArchiveObject]] = []
    for extension in (NDJSON, PARQUET):
        current: list[ArchiveObject] = []
        size = 0
        for item in (o for o in objects if o.format == extension):
            if current and (size + item.size > CHUNK_BYTES or len(current) >= CHUNK_OBJECTS):
                groups.append(current)
                current, size = [], 0
            current.append(item)
            size += item.size
        if current:
            groups.append(current)
    return groups


def load_events(connection: duckdb.DuckDBPyConnection, settings: Settings,
                selection: Selection, window: Window,
                advance: Callable[[int], None] = lambda read: None,
                root: str | None = None) -> int:
    """Load the selected objects' documents of the window into ``events``; the number loaded.
    `advance` is told the bytes of objects read after each statement. Objects are read from
    the bucket, or from `root` (a directory holding them under their keys: a local copy)."""
    create_events_table(connection)
    time_field = settings.s3_time_field.value
    base = root.rstrip("/") + "/" if root else f"s3://{settings.s3_bucket}/"
    for group in chunks(selection.objects):
        urls = [base + item.key for item in group]
        select = _select_sql(_source_sql(urls, group[0].format or NDJSON), time_field)
        try:
            connection.execute(
                f"INSERT INTO events SELECT * FROM ({select}) WHERE ts >= ? AND ts < ?",
                [window.since, window.until])
        except duckdb.Error as error:
            raise ArchiveError(f"DuckDB could not read {len(urls)} objects starting with "
                               f"{urls[0]}: {error}") from error
        advance(sum(item.size for item in group))
    (count,) = connection.execute("SELECT count(*) FROM events").fetchone() or (0,)
    return int(count)
