"""A month of API Gateway access logs written straight to the bucket, laid out as the S3 sink
lays them out, for the report's end-to-end test and benchmark.

DuckDB makes the documents (one SQL statement for every row, deterministic: choices come from
hashes of the row number), so a million events take seconds, not the minutes a worker would
need. The month exercises every way the report must read the archive:

* days 1-20: gzip NDJSON in the ``hive`` layout; even hours as three parts per partition, odd
  hours as one hourly object per partition (``SLUICE_S3_PUBLISH=parts`` / ``hourly``);
* days 21-26: Parquet (the sink's schema, ``worker/events/parquet_schema.py``), ``hive``;
* days 27-end: gzip NDJSON in the ``segment`` layout (``segment-logs/<api id>/<day in ms>/``).

Documents look like the worker's (normalised, enriched; 3 % of calls use keys not in the
catalog, ``enriched: false``), filed by ``received_at``.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from isal import igzip

from worker.config import Settings
from worker.events.parquet_schema import SCHEMA
from worker.sinks.s3.sink import make_client_context

PLANS = ("Enterprise", "Pro", "Free")
# (customer, plan, weight): a few large customers and a long tail, as in seed 003's charts.
CUSTOMERS = (
    ("Acme Corp", "Enterprise", 22), ("Globex", "Enterprise", 15), ("Initech", "Enterprise", 10),
    ("Umbrella", "Pro", 9), ("Hooli", "Pro", 8), ("Stark Industries", "Pro", 7),
    ("Wayne Enterprises", "Pro", 6), ("Cyberdyne", "Free", 5), ("Soylent", "Free", 5),
    ("Tyrell", "Free", 4), ("Wonka", "Free", 3), ("Oscorp", "Free", 3),
)
UNKNOWN_KEYS = ("key-stolen-1", "key-retired-2")  # 3 % of calls, not in the catalog
ENDPOINTS = (("GET", "/v1/orders"), ("GET", "/v1/orders/{id}"), ("POST", "/v1/orders"),
             ("GET", "/v1/customers/{id}"), ("PUT", "/v1/customers/{id}"),
             ("GET", "/v1/products"), ("DELETE", "/v1/orders/{id}"), ("POST", "/v1/payments"))
API_ID = "a1b2c3d4e5"
PARTITIONS = 2


@dataclass(frozen=True)
class MonthArchive:
    """What was written: objects and events, and the month's range."""

    start: datetime
    end: datetime
    events: int
    objects: int
    bytes: int


def _literal(value: object) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


def _pick(index: str, low_high: list[tuple[int, int]]) -> str:
    """A CASE giving the position whose [low, high) holds `index`."""
    arms = " ".join(f"WHEN {index} < {high} THEN {position}"
                    for position, (_, high) in enumerate(low_high, start=1))
    return f"CASE {arms} END"


def _documents_sql(start: datetime, seconds: int, events: int, topic: str) -> str:
    """Every document of the month, in offset order; 3 % of calls carry unknown keys."""
    bounds, low = [], 0
    for *_, weight in CUSTOMERS:
        bounds.append((low, low + weight))
        low += weight
    names = [name for name, _, _ in CUSTOMERS]
    plans = [plan for _, plan, _ in CUSTOMERS]
    keys = [f"key-{index:02d}" for index in range(len(CUSTOMERS))]
    # Endpoints: a skewed pick (the square of a uniform draw favours the first ones).
    methods = [method for method, _ in ENDPOINTS]
    paths = [path for _, path in ENDPOINTS]
    epoch = int(start.timestamp())

    def array(values: list[str]) -> str:
        return "[" + ", ".join(_literal(value) for value in values) + "]"

    return f"""
    WITH numbered AS (
        SELECT n,
               to_timestamp({epoch} + (n * {seconds}) // {events}
                            + CAST(hash(n, 'ms') % 1000 AS BIGINT) / 1000.0) AS received,
               CAST(hash(n, 'customer') % 1000 AS BIGINT) AS pick,
               CAST(hash(n, 'endpoint') % 100 AS BIGINT) AS draw,
               CAST(hash(n, 'status') % 1000 AS BIGINT) AS outcome,
               CAST(hash(n, 'size') % 1000 AS BIGINT) AS size
        FROM range({events}) AS t(n)),
    shaped AS (
        SELECT *, 1 + (draw * draw) // 1250 AS route,
               CASE WHEN pick >= 30 THEN {_pick(f"((pick - 30) * {low}) // 970", bounds)}
                    END AS customer
        FROM numbered)
    SELECT n % {PARTITIONS} AS partition, n // {PARTITIONS} AS "offset", received,
           strftime(received, '%Y-%m-%dT%H:%M:%S.%gZ') AS received_at,
           strftime(received - INTERVAL 40 MILLISECOND, '%Y-%m-%dT%H:%M:%S.%gZ') AS timestamp,
           'req-' || n AS event_id, 'req-' || n AS request_id, 'access_log' AS type,
           '198.51.100.' || (1 + n % 254) AS ip, {array(methods)}[route] AS http_method,
           {array(paths)}[route] AS resource_path,
           replace({array(paths)}[route], '{{id}}', CAST(n % 977 AS VARCHAR)) AS path,
           'HTTP/1.1' AS protocol,
           CASE WHEN outcome < 880 THEN 200 WHEN outcome < 930 THEN 201
                WHEN outcome < 950 THEN 404 WHEN outcome < 975 THEN 400
                WHEN outcome < 990 THEN 429 ELSE 503 END AS status,
           CAST(exp(4 + size / 120.0) AS BIGINT) AS response_length,
           '{API_ID}' AS api_id, 'prod' AS stage,
           coalesce({array(keys)}[customer], {array(list(UNKNOWN_KEYS))}[1 + pick % 2])
             AS api_key_id,
           'curl/8.5' AS user_agent, '{API_ID}' AS source_id,
           'cust-' || lpad(CAST(customer - 1 AS VARCHAR), 2, '0') AS customer_id,
           {array(names)}[customer] AS customer_name,
           lower({array(plans)}[customer]) AS usage_plan_id,
           {array(plans)}[customer] AS usage_plan_name,
           {array(keys)}[customer] AS api_key_name, customer IS NOT NULL AS enriched,
           'access_log' AS input_format,
           {{'topic': '{topic}', 'partition': CAST(n % {PARTITIONS} AS INTEGER),
             'offset': n // {PARTITIONS}, 'batch_index': CAST(NULL AS INTEGER)}} AS kafka
    FROM shaped ORDER BY n
    """


def _keys_sql(prefix: str, start: datetime, topic: str) -> str:
    """Each document's object key: directory by day (hive NDJSON, hive Parquet, segment),
    parts by hour and partition, the offsets the sink would name."""
    day = f"(datediff('day', TIMESTAMPTZ '{start.isoformat()}', hour) + 1)"
    hive = ("'year=' || strftime(hour, '%Y') || '/month=' || strftime(hour, '%m') || '/day=' || "
            "strftime(hour, '%d') || '/hour=' || strftime(hour, '%H') || '/'")
    segment = (f"'segment-logs/{API_ID}/' || "
               "CAST(epoch_ms(date_trunc('day', hour)) AS VARCHAR) || '/'")
    return f"""
    WITH placed AS (
        SELECT *, CASE WHEN {day} <= 26 THEN {hive} ELSE {segment} END AS directory,
               CASE WHEN {day} BETWEEN 21 AND 26 THEN 'parquet' ELSE 'ndjson' END AS format,
               CASE WHEN {day} <= 20 AND hour(hour) % 2 = 0 THEN minute(received) // 20
                    ELSE 0 END AS part
        FROM (SELECT *, date_trunc('hour', received) AS hour FROM documents)),
    objects AS (
        SELECT hour, partition, part, '{prefix}' || any_value(directory) || '{topic}+'
               || partition || '+' || lpad(CAST(min("offset") AS VARCHAR), 12, '0') || '+'
               || lpad(CAST(max("offset") AS VARCHAR), 12, '0')
               || CASE any_value(format) WHEN 'parquet' THEN '.parquet' ELSE '.ndjson.gz' END
               AS key
        FROM placed GROUP BY hour, partition, part)
    SELECT placed.*, objects.key FROM placed JOIN objects USING (hour, partition, part)
    """


# The access-log documents' fields (the normaliser's and the catalog's), in the schema's order;
# the schema's other columns are null in these Parquet objects.
_FIELDS = ["event_id", "type", "timestamp", "received_at", "source_id", "request_id", "ip",
           "http_method", "resource_path", "path", "protocol", "status", "response_length",
           "api_id", "stage", "api_key_id", "user_agent", "customer_id", "customer_name",
           "usage_plan_id", "usage_plan_name", "api_key_name", "enriched", "input_format",
           "kafka"]
_CATALOG_FIELDS = ("customer_id", "customer_name", "usage_plan_id", "usage_plan_name",
                   "api_key_name")


def _ndjson_objects(connection: duckdb.DuckDBPyConnection) -> dict[str, bytes]:
    """gzip NDJSON objects: one normalised document a line, in offset order; fields without
    a value are left out, as the sink leaves them out (calls with unknown keys have no
    customer fields, a record that is no batch has no batch index)."""
    plain = [name for name in _FIELDS if name not in _CATALOG_FIELDS and name != "kafka"]
    kafka = "kafka := struct_pack(topic := kafka.topic, partition := kafka.partition, " \
            "\"offset\" := kafka.offset)"
    known = ", ".join([f'"{name}"' for name in plain + list(_CATALOG_FIELDS)] + [kafka])
    unknown = ", ".join([f'"{name}"' for name in plain] + [kafka])
    rows = connection.execute(
        f"SELECT key, string_agg(CASE WHEN enriched THEN to_json(struct_pack({known})) "
        f"ELSE to_json(struct_pack({unknown})) END::VARCHAR, chr(10) ORDER BY \"offset\") "
        "FROM keyed WHERE format = 'ndjson' GROUP BY key").fetchall()
    return {key: igzip.compress((text + "\n").encode(), 1) for key, text in rows}


def _parquet_objects(connection: duckdb.DuckDBPyConnection) -> dict[str, bytes]:
    """Parquet objects with the sink's one schema (zstd), in offset order."""
    columns = ", ".join(f'"{name}"' if name in _FIELDS else f'CAST(NULL AS VARCHAR) AS "{name}"'
                        for name in SCHEMA.names)
    table = connection.execute(
        f"SELECT key, {columns} FROM keyed WHERE format = 'parquet' ORDER BY key, \"offset\""
    ).fetch_arrow_table()
    keys = table.column("key").to_pylist()
    objects: dict[str, bytes] = {}
    start = 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index] != keys[start]:
            part = table.slice(start, index - start).drop(["key"]).cast(SCHEMA)
            buffer = io.BytesIO()
            pq.write_table(part, buffer, compression="zstd")
            objects[keys[start]] = buffer.getvalue()
            start = index
    return objects


async def _upload(settings: Settings, objects: dict[str, bytes], concurrency: int = 8) -> None:
    """Put every object, a few at a time; a refused connection (a busy shared server) is tried
    again."""
    from botocore.exceptions import EndpointConnectionError

    gate = asyncio.Semaphore(concurrency)
    async with make_client_context(settings) as client:
        async def put(key: str, body: bytes) -> None:
            async with gate:
                for attempt in range(5):
                    try:
                        await client.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)
                        return
                    except EndpointConnectionError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.2 * 2 ** attempt)

        await asyncio.gather(*(put(key, body) for key, body in objects.items()))


def month_documents(connection: duckdb.DuckDBPyConnection, settings: Settings,
                    start: datetime, days: int, events: int) -> None:
    """The table ``keyed``: every document of the month with its object key and format."""
    topic = settings.source_topic
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("CREATE TABLE documents AS "
                       + _documents_sql(start, days * 86400, events, topic))
    connection.execute("CREATE TABLE keyed AS " + _keys_sql(settings.s3_prefix, start, topic))


async def write_month(settings: Settings, start: datetime, days: int = 30,
                      events: int = 1_000_000) -> MonthArchive:
    """Write the month to SLUICE_S3_BUCKET under SLUICE_S3_PREFIX (the bucket must exist)."""
    connection = duckdb.connect()
    month_documents(connection, settings, start, days, events)
    objects = _ndjson_objects(connection) | _parquet_objects(connection)
    connection.close()
    await _upload(settings, objects)
    return MonthArchive(start, start + timedelta(days=days), events, len(objects),
                        sum(len(body) for body in objects.values()))


def duckdb_on_the_bucket(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB reading SLUICE_S3_BUCKET on its own, through its httpfs extension (from the
    duckdb-ext-httpfs package): the figures a report must match, read another way than the
    report reads them (``worker.report.fetch``)."""
    import duckdb_ext

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET extension_directory = ?",
                       [str(Path(list(duckdb_ext.__path__)[0]) / "extensions")])
    connection.execute("LOAD httpfs")
    scheme, _, host = (settings.s3_endpoint_url or "").partition("://")
    connection.execute(
        "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', "
        "USE_SSL ?)", [settings.aws_access_key_id, settings.aws_secret_access_key,
                       settings.s3_region, host.rstrip("/"), scheme == "https"])
    return connection


def month_start(months_ago: int = 2) -> datetime:
    """The first day of a month this long ago (UTC): a past month no other data shares."""
    now = datetime.now(UTC)
    year, month = now.year, now.month - months_ago
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)
