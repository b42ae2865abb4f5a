"""DuckDB loading the selected objects' documents into the ``events`` table, the columns of
``worker.report.panels.COLUMNS``, once: every panel then queries that table in memory.

The objects are fetched (``fetch``) a batch ahead of DuckDB, which reads each batch from local
files while the next is fetched (DuckDB leaves Python's lock while it works). A batch is one
format: its gzip NDJSON objects are joined into a few files (gzip members one after another
are one gzip stream; a member holding a line break goes between objects, so that an object
whose last line has no line break cannot run into the next), its Parquet objects are a file
each. Why join them: DuckDB's JSON reader costs about half a millisecond of CPU per file
however small, so the month's 2,100 NDJSON objects cost 2.8 s of CPU read as they are and
1.8 s joined into a few files (the same 490 MiB of JSON). A few files, not one, because DuckDB
reads a gzip file on one thread and the files of a statement in parallel.

NDJSON documents are read with the fields the columns need only, with their types given (no
schema detection); a document without one reads as null. Parquet objects have them by their
schema (``union_by_name``: files written before a column existed read it as null). Rows are
kept when their filing time (SLUICE_S3_TIME_FIELD, the field the directories are made from)
lies in the range.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from itertools import islice
from pathlib import Path

import duckdb

from worker.config import Settings
from worker.report.archive import NDJSON, PARQUET, ArchiveError, ArchiveObject, Selection
from worker.report.fetch import CONCURRENCY, LocalCopy, ObjectSource, bucket_objects
from worker.report.panels import COLUMNS
from worker.report.window import Window

# A batch: what one DuckDB statement reads, and how often the progress bar moves (a month: 13
# batches). Fetching runs AHEAD batches in front of DuckDB, which bounds the memory it holds.
BATCH_BYTES = 4 * 1024 * 1024
BATCH_OBJECTS = 400
AHEAD = 2
# The files a batch of NDJSON objects is joined into: DuckDB reads them side by side.
FILES_PER_BATCH = 4

# The document fields NDJSON objects are read with (the columns' SQL uses these). DuckDB's JSON
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
_LINE_BREAK = gzip.compress(b"\n", mtime=0)


def scan_threads() -> int:
    """DuckDB's threads while it loads: a core is left to the fetches (Python's event loop),
    which run beside it. On this project's 2 cores, shared with other work, one thread read
    the month with less CPU and sooner than two (3 interleaved runs each at a load of 4.6: scan
    7.1-8.8 s against 8.1-12.0 s, the process's CPU 5.8-6.5 s against 6.5-7.8 s): two threads
    and the event loop contend for two cores, and DuckDB's threads spend CPU waiting on each
    other. The panels' queries afterwards use every core."""
    return max(1, (os.cpu_count() or 2) - 1)


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC (it reads local files only)."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_events_table(connection: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f"{column.name} {column.type}" for column in COLUMNS)
    connection.execute(f"CREATE TABLE events ({columns})")


def select_sql(source: str, time_field: str) -> str:
    """The ``events`` columns of the documents `source` (a table function) reads."""
    expressions = ", ".join(
        f"CAST({column.sql.format(time_field=time_field)} AS {column.type}) AS {column.name}"
        for column in COLUMNS)
    return f"SELECT {expressions} FROM {source}"


def source_sql(paths: Sequence[str], extension: str) -> str:
    """The DuckDB table function reading these files of one format."""
    files = "[" + ", ".join(_quote(path) for path in paths) + "]"
    if extension == PARQUET:
        return f"read_parquet({files}, union_by_name = true)"
    fields = "{" + ", ".join(f"{_quote(name)}: {_quote(kind)}"
                             for name, kind in _NDJSON_FIELDS.items()) + "}"
    return (f"read_json({files}, format = 'newline_delimited', compression = 'gzip', "
            f"columns = {fields})")


def batches(objects: Sequence[ArchiveObject]) -> list[list[ArchiveObject]]:
    """Objects of one format grouped for one statement each (BATCH_BYTES, BATCH_OBJECTS)."""
    groups: list[list[ArchiveObject]] = []
    for extension in (NDJSON, PARQUET):
        current: list[ArchiveObject] = []
        size = 0
        for item in (o for o in objects if o.format == extension):
            if current and (size + item.size > BATCH_BYTES or len(current) >= BATCH_OBJECTS):
                groups.append(current)
                current, size = [], 0
            current.append(item)
            size += item.size
        if current:
            groups.append(current)
    return groups


def join_ndjson(bodies: Sequence[bytes], files: int) -> list[bytes]:
    """The gzip NDJSON objects as at most `files` gzip files of about equal size, each
    object's lines whole (a line break between objects)."""
    joined: list[list[bytes]] = [[] for _ in range(min(files, len(bodies)))]
    sizes = [0] * len(joined)
    for body in sorted(bodies, key=len, reverse=True):
        lightest = sizes.index(min(sizes))
        joined[lightest] += [body, _LINE_BREAK]
        sizes[lightest] += len(body)
    return [b"".join(parts) for parts in joined]


def _write_batch(batch: list[ArchiveObject], bodies: list[bytes], directory: Path,
                 number: int) -> list[str]:
    """The batch as local files DuckDB reads; their paths."""
    extension = batch[0].format or NDJSON
    contents = join_ndjson(bodies, FILES_PER_BATCH) if extension == NDJSON else bodies
    paths = []
    for index, content in enumerate(contents):
        path = directory / f"batch-{number}-{index}{extension}"
        path.write_bytes(content)
        paths.append(str(path))
    return paths


class _Loader:
    """Each batch, from local files, into a table of its own (``events_<n>``)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, settings: Settings,
                 window: Window, directory: Path, origin: str) -> None:
        self._connection = connection
        self._time_field = settings.s3_time_field.value
        self._window = window
        self._directory = directory
        self._origin = origin
        self.tables: list[str] = []

    def load(self, batch: list[ArchiveObject], bodies: list[bytes]) -> None:
        number = len(self.tables)
        try:
            paths = _write_batch(batch, bodies, self._directory, number)
        except OSError as error:
            raise ArchiveError(f"cannot write the objects DuckDB reads to {self._directory}: "
                               f"{error}; point TMPDIR at a directory with room") from error
        select = select_sql(source_sql(paths, batch[0].format or NDJSON), self._time_field)
        try:
            self._connection.execute(
                f"CREATE TABLE events_{number} AS SELECT * FROM ({select}) "
                "WHERE ts >= ? AND ts < ?", [self._window.since, self._window.until])
        except duckdb.Error as error:
            raise ArchiveError(f"DuckDB could not read {len(batch)} objects starting with "
                               f"{self._origin}{batch[0].key}: {error}") from error
        finally:
            for path in paths:
                Path(path).unlink(missing_ok=True)
        self.tables.append(f"events_{number}")


async def _load(loader: _Loader, source: ObjectSource, groups: list[list[ArchiveObject]],
                advance: Callable[[int], None]) -> None:
    """Fetch the batches' objects (AHEAD batches in front) while DuckDB loads the batch
    before."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def read(item: ArchiveObject) -> bytes:
        async with gate:
            return await source.read(item)

    def start(batch: list[ArchiveObject]) -> asyncio.Future[list[bytes]]:
        return asyncio.gather(*(read(item) for item in batch))

    waiting = iter(groups)
    fetching: deque[tuple[list[ArchiveObject], asyncio.Future[list[bytes]]]] = deque(
        (batch, start(batch)) for batch in islice(waiting, AHEAD + 1))
    try:
        while fetching:
            batch, bodies = fetching.popleft()
            ready = await bodies
            following = next(waiting, None)
            if following:
                fetching.append((following, start(following)))
            # DuckDB leaves Python's lock while it reads: the fetches go on meanwhile.
            await asyncio.to_thread(loader.load, batch, ready)
            advance(sum(item.size for item in batch))
    finally:
        for _, pending in fetching:
            pending.cancel()
        await asyncio.gather(*(pending for _, pending in fetching), return_exceptions=True)


async def _load_selection(connection: duckdb.DuckDBPyConnection, settings: Settings,
                          selection: Selection, window: Window,
                          advance: Callable[[int], None], root: Path | None) -> list[str]:
    groups = batches(selection.objects)
    if not groups:
        return []
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="sluice-report-")))
        if root is None:
            source: ObjectSource = await stack.enter_async_context(bucket_objects(settings))
            origin = f"s3://{settings.s3_bucket}/"
        else:
            source, origin = LocalCopy(root), f"{root}/"
        loader = _Loader(connection, settings, window, directory, origin)
        await _load(loader, source, groups, advance)
    return loader.tables


def load_events(connection: duckdb.DuckDBPyConnection, settings: Settings,
                selection: Selection, window: Window,
                advance: Callable[[int], None] = lambda read: None,
                root: Path | None = None) -> int:
    """Load the selected objects' documents of the window into ``events``; the number loaded.
    `advance` is told the bytes of objects read after each batch. Objects are read from the
    bucket, or from `root` (a directory holding them under their keys: a local copy).

    ``events`` is a view of the batches' tables, one after another: each batch is a table
    created by its statement, because appending to a table that holds rows costs DuckDB a
    copy of the new ones (INSERT goes through the transaction's own storage first: a month
    in 6 statements, 0.4 s more CPU than in one)."""
    connection.execute(f"SET threads = {scan_threads()}")
    try:
        tables = asyncio.run(_load_selection(connection, settings, selection, window, advance,
                                             root))
    finally:
        connection.execute("RESET threads")
    if tables:
        connection.execute("CREATE VIEW events AS "
                           + " UNION ALL ".join(f"SELECT * FROM {table}" for table in tables))
    else:
        create_events_table(connection)
    (count,) = connection.execute("SELECT count(*) FROM events").fetchone() or (0,)
    return int(count)
