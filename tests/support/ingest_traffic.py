"""Requests as Segment, Firehose and a JSON client send them to `sluice ingest`, with ledgers."""

from __future__ import annotations

import base64
import gzip
import uuid

import aiohttp
import orjson

from tests.support.processes import free_port
from worker.config import Settings
from worker.ingest.auth import segment_signature

SECRET, ACCESS_KEY, TOKEN = "e2e-segment-secret", "e2e-firehose-key", "e2e-bearer-token"


def ingest_settings(settings: Settings) -> Settings:
    """The settings with every form's credentials and free ports for `sluice ingest`."""
    return settings.model_copy(update={
        "ingest_host": "127.0.0.1", "ingest_port": free_port(), "web_port": free_port(),
        "ingest_segment_shared_secret": SECRET, "ingest_firehose_access_key": ACCESS_KEY,
        "ingest_bearer_tokens": [TOKEN],
    })


def outage_settings(settings: Settings, session_timeout: float,
                    rebalance_timeout: float) -> Settings:
    """Ingest settings for a broker outage under traffic: both sinks with short ages and retries,
    a 2 s produce timeout, and the group's timeouts the scenario needs."""
    return ingest_settings(settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 3.0,
        "elasticsearch_batch_max_age": 0.3, "elasticsearch_retry_max": 2.0,
        "s3_retry_max": 2.0, "session_timeout": session_timeout, "heartbeat_interval": 1.0,
        "rebalance_timeout": rebalance_timeout, "drain_timeout": 15.0,
        "ingest_produce_timeout": 2.0,
    }))


def segment_event(user: str) -> tuple[str, dict]:
    """(event id, a Segment track event with that messageId)."""
    event_id = uuid.uuid4().hex
    return event_id, {"type": "track", "event": "Order Completed", "userId": user,
                      "messageId": event_id, "properties": {"revenue": 9.5}}


def access_log() -> tuple[str, dict]:
    """(event id, an API Gateway access log with that requestId)."""
    event_id = uuid.uuid4().hex
    return event_id, {"requestId": event_id, "httpMethod": "GET", "status": 200,
                      "resourcePath": "/items", "identity": {"apiKeyId": "key-acme"},
                      "requestTime": "22/Nov/2026:20:31:04 +0000"}


class Ingest:
    """A client of one `sluice ingest`: each method sends one request and returns its answer."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession,
                 forwarded_for: str | None = None) -> None:
        self.url = f"http://127.0.0.1:{settings.ingest_port}"
        self.session = session
        # As a proxy in front would say: the client's address (believed from trusted proxies).
        self.forwarded = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}

    async def _post(self, path: str, body: bytes, headers: dict[str, str]
                    ) -> tuple[int, dict, dict[str, str]]:
        headers = {**headers, **self.forwarded}
        async with self.session.post(self.url + path, data=body, headers=headers) as response:
            return response.status, await response.json(), dict(response.headers)

    async def segment(self, body: bytes, secret: str = SECRET
                      ) -> tuple[int, dict, dict[str, str]]:
        """A Segment webhook signed with `secret`."""
        return await self._post("/segment", body,
                                {"X-Signature": segment_signature(secret, body),
                                 "Content-Type": "application/json"})

    async def firehose(self, events: list[dict], gzipped: bool = False, key: str = ACCESS_KEY
                       ) -> tuple[int, dict, dict[str, str]]:
        """A Firehose HTTP-endpoint delivery, one base64 record per event (a log line each)."""
        request_id = str(uuid.uuid4())
        body = orjson.dumps({"requestId": request_id, "timestamp": 1763843464000,
                             "records": [{"data": base64.b64encode(orjson.dumps(e) + b"\n")
                                          .decode()} for e in events]})
        headers = {"X-Amz-Firehose-Access-Key": key, "X-Amz-Firehose-Request-Id": request_id,
                   "X-Amz-Firehose-Source-Arn": "arn:aws:firehose:eu-west-1:1:deliverystream/s",
                   "Content-Type": "application/json"}
        if gzipped:
            body, headers["Content-Encoding"] = gzip.compress(body), "GZIP"
        return await self._post("/firehose", body, headers)

    async def ndjson(self, events: list[dict], token: str = TOKEN
                     ) -> tuple[int, dict, dict[str, str]]:
        """Plain NDJSON with a bearer token."""
        body = b"".join(orjson.dumps(event) + b"\n" for event in events)
        return await self._post("/events", body, {"Authorization": f"Bearer {token}",
                                                   "Content-Type": "application/x-ndjson"})
