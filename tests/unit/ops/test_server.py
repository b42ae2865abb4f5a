"""The readiness answer's body: problems make a worker unready, notices do not."""

from __future__ import annotations

import orjson
from prometheus_client.registry import CollectorRegistry

from worker.ops.server import OpsServer


async def test_readiness_names_notices_and_stays_ready_for_them() -> None:
    async def nothing_wrong() -> dict[str, str]:
        return {}

    parked = {"sink.s3": "events[3]: the hourly merge into logs/x is parked"}
    server = OpsServer("127.0.0.1", 0, CollectorRegistry(), nothing_wrong,
                       notices=lambda: parked)
    answer = await server._ready(None)  # type: ignore[arg-type]
    assert answer.status == 200
    assert orjson.loads(answer.body) == {  # type: ignore[arg-type]
        "status": "ready", "problems": {}, "notices": parked}
