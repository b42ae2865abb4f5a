"""Parquet objects on the local S3 server, read by DuckDB straight from the bucket as Athena would.

A worker archives Segment events and access logs spread over three hours (access logs with API
keys of two usage plans and one unknown key) as Parquet, hive layout; DuckDB (httpfs from the
duckdb-ext-httpfs package) reads ``s3://…/year=*/month=*/day=*/hour=*/*.parquet`` with hive
partitioning: the counts per hour and per usage plan equal what was produced, the columns have
their types, and a query reaches into ``properties``; a replay writes no object twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from tests.integration.test_s3_sink import _duckdb_on_the_bucket, _objects, _produce, _run_worker
from tests.support.hourly import BASE_HOUR
from tests.support.processes import wait_for_no_lag
from worker.catalog.entries import CatalogEntry, publish_entries
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.sinks.s3.client import make_client_context

pytestmark = pytest.mark.integration

PLANS = {"key-acme": "Gold", "key-globex": "Free", "key-unknown": None}


def _traffic(count: int) -> tuple[list[bytes], Counter[str], Counter[str | None], int]:
    """Track events and access logs over three hours; expected counts per hour and per plan,
    and the sum of the track events' `properties.index`."""
    values: list[bytes] = []
    per_hour: Counter[str] = Counter()
    per_plan: Counter[str | None] = Counter()
    index_sum = 0
    keys = list(PLANS)
    for index in range(count):
        moment = BASE_HOUR + timedelta(seconds=(index * 10_799) // count)
        stamp = moment.isoformat().replace("+00:00", "Z")
        if index % 3 == 0:
            key = keys[index % len(keys)]
            event = {"requestId": f"r-{index}", "requestTime": stamp, "httpMethod": "GET",
                     "status": 200 + index % 2, "responseLength": index,
                     "identity": {"apiKeyId": key}}
            per_plan[PLANS[key]] += 1
        else:
            event = {"type": "track", "event": "Viewed", "userId": f"u{index % 50}",
                     "messageId": f"m-{index}", "timestamp": stamp,
                     "properties": {"index": index, "tags": ["a", "b"]}}
            index_sum += index
        values.append(orjson.dumps(event))
        per_hour[f"{moment.hour:02d}"] += 1
    return values, per_hour, per_plan, index_sum


async def test_duckdb_reads_the_parquet_archive_from_the_bucket(
    s3_settings: Settings, tmp_path: Path
) -> None:
    settings = s3_settings.model_copy(update={"s3_format": "parquet"})
    await ensure_topics(settings)
    await publish_entries(settings, [
        CatalogEntry(api_key_id="key-acme", customer_id="c-acme", usage_plan_name="Gold"),
        CatalogEntry(api_key_id="key-globex", customer_id="c-globex", usage_plan_name="Free"),
    ])
    values, per_hour, per_plan, index_sum = _traffic(3000)
    await _produce(settings, values)
    worker = _run_worker(settings, tmp_path, "parquet")
    await wait_for_no_lag(settings, worker)
    assert worker.stop() == 0, worker.log()[-3000:]

    keys = list(await _objects(settings, "logs/year="))
    assert keys and all(key.endswith(".parquet") for key in keys), keys
    assert await _objects(settings, "logs/_sluice/staging/") == {}
    assert {key.split("/")[4] for key in keys} == {"hour=09", "hour=10", "hour=11"}
    async with make_client_context(settings) as client:
        head = await client.head_object(Bucket=settings.s3_bucket, Key=keys[0])
    # Stored as it is: an HTTP client must not try to gunzip a Parquet file.
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert "ContentEncoding" not in head, head.get("ContentEncoding")

    connection = _duckdb_on_the_bucket(settings)
    archive = (f"read_parquet('s3://{settings.s3_bucket}/logs/year=*/month=*/day=*/hour=*/"
               "*.parquet', hive_partitioning = true)")
    rows = connection.sql(
        f"SELECT hour, count(*), count(DISTINCT event_id) FROM {archive} GROUP BY hour").fetchall()
    assert {hour: (events, ids) for hour, events, ids in rows} == {
        hour: (n, n) for hour, n in per_hour.items()}

    plans = connection.sql(
        f"SELECT usage_plan_name, count(*) FROM {archive} WHERE type = 'access_log' "
        "GROUP BY usage_plan_name").fetchall()
    assert dict(plans) == dict(per_plan)

    # Into the JSON text of `properties`: DuckDB's JSON operators, as the README shows.
    (total, tagged), = connection.sql(
        f"SELECT sum((properties->>'$.index')::BIGINT), "
        f"count(*) FILTER (WHERE properties->'$.tags'->>0 = 'a') FROM {archive} "
        "WHERE type = 'track'").fetchall()
    assert total == index_sum and tagged == sum(per_hour.values()) - sum(per_plan.values())

    types = {row[0]: row[1]
             for row in connection.sql(f"DESCRIBE SELECT * FROM {archive}").fetchall()}
    assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["status"] == "BIGINT" and types["enriched"] == "BOOLEAN"
    first, = connection.sql(
        f"SELECT min(timestamp) AT TIME ZONE 'UTC', min(kafka.offset) FROM {archive}").fetchall()
    assert first == (BASE_HOUR.replace(tzinfo=None), 0)

    # The same offset markers as the other formats: a replay (a new consumer group) adds nothing.
    replay = settings.model_copy(update={"app_id": settings.app_id + "-replay"})
    worker = _run_worker(replay, tmp_path, "replay")
    await wait_for_no_lag(replay, worker)
    assert worker.stop() == 0
    assert sorted(await _objects(settings, "logs/year=")) == sorted(keys)
