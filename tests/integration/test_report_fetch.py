"""The report reading a real bucket (the local S3 server) through a fault proxy: each object is
asked for once, a busy server's refusals are asked again, and every document of the range is
loaded, from gzip NDJSON and Parquet objects alike."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.fault_proxy import FaultProxy
from worker.config import S3TimeField, Settings
from worker.events.parquet_schema import record_batch
from worker.report.archive import list_archive, select_objects
from worker.report.scan import connect, load_events
from worker.report.window import Window
from worker.sinks.s3.client import make_client_context, preflight

pytestmark = pytest.mark.integration

HOUR = datetime(2026, 11, 22, 10, tzinfo=UTC)
WINDOW = Window(HOUR, HOUR.replace(hour=11))


def _call(number: int, plan: str) -> dict:
    return {"event_id": f"r{number}", "type": "access_log", "status": 200,
            "timestamp": f"2026-11-22T10:{number:02d}:00.000Z",
            "received_at": f"2026-11-22T10:{number:02d}:00.100Z", "http_method": "GET",
            "resource_path": "/v1/orders", "response_length": 100, "api_key_id": "k",
            "customer_name": "Acme Corp", "usage_plan_name": plan, "enriched": True,
            "input_format": "access_log", "kafka": {"topic": "e", "partition": 0,
                                                    "offset": number}}


def _objects(prefix: str) -> dict[str, bytes]:
    hour = f"{prefix}year=2026/month=11/day=22/hour=10/"
    objects = {}
    for part in range(6):
        calls = [_call(part * 5 + n, "Gold") for n in range(5)]
        objects[f"{hour}e+0+{part}.ndjson.gz"] = gzip.compress(
            b"".join(orjson.dumps(call) + b"\n" for call in calls))
    for part in range(3):
        sink = pa.BufferOutputStream()
        calls = [_call(30 + part * 5 + n, "Free") for n in range(5)]
        pq.write_table(pa.Table.from_batches([record_batch(calls)]), sink)
        objects[f"{hour}e+1+{part}.parquet"] = sink.getvalue().to_pybytes()
    return objects


async def _put(settings: Settings, objects: dict[str, bytes]) -> None:
    async with make_client_context(settings) as client:
        for key, body in objects.items():
            await client.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)


def test_each_object_is_one_get_and_a_busy_server_is_asked_again(
    s3_settings: Settings,
) -> None:
    asyncio.run(preflight(s3_settings))
    objects = _objects(s3_settings.s3_prefix)
    asyncio.run(_put(s3_settings, objects))
    proxy = FaultProxy(s3_settings.s3_endpoint_url or "", signed=True).start()
    try:
        proxied = s3_settings.model_copy(update={
            "s3_endpoint_url": proxy.url, "s3_time_field": S3TimeField.TIMESTAMP})
        selection = select_objects(asyncio.run(list_archive(proxied)), WINDOW)
        assert len(selection.objects) == len(objects) == 9
        asked = proxy.requests
        proxy.fail_next(3, 503)
        connection = connect()
        assert load_events(connection, proxied, selection, WINDOW) == 45
        # One GET an object (no HEAD first, no second GET for a Parquet footer), and the
        # three refusals asked again.
        assert proxy.requests - asked == len(objects) + 3
        assert proxy.refused == 3
    finally:
        proxy.stop()
    plans = dict(connection.execute(
        "SELECT usage_plan, count(*) FROM events GROUP BY ALL").fetchall())
    assert plans == {"Gold": 30, "Free": 15}
