"""Every request is answered by `sluice ingest` itself: an unreadable credential header is a 400,
an unexpected error a 500 with a request id and one log line, a client that keeps failing
authentication a 429, a request aiohttp cannot parse one line; all of them counted."""

from __future__ import annotations

import logging

import orjson
import pytest

from tests.support.ingest_server import (
    ACCESS_KEY,
    TOKEN,
    RawClient,
    guard_settings,
    metric,
    post,
    serving,
)
from tests.support.recording_producer import RecordingProducer
from worker.ingest.auth import segment_signature

EVENT = orjson.dumps({"type": "track", "event": "A", "userId": "u1", "messageId": "m1"})


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("path, form, header", [
    ("/segment", "segment", b"X-Signature: \xff\xfe"),
    ("/firehose", "firehose", b"X-Amz-Firehose-Access-Key: k\xff"),
    ("/events", "json", b"Authorization: Bearer \xff\xfe"),
    ("/segment", "segment", b"Authorization: Basic \xff"),
])
async def test_a_credential_header_that_is_not_utf8_gets_400_counted_no_traceback(
        caplog: pytest.LogCaptureFixture, path: str, form: str, header: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    producer = RecordingProducer()
    async with serving(guard_settings(), producer) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        await client.send(post(path, EVENT, raw_headers=header + b"\r\n"))
        status, headers, body = await client.answer()
        client.close()
        name = header.split(b":")[0].decode()
        answer = orjson.loads(body)
        message = answer.get("errorMessage") if form == "firehose" else answer["error"]
        assert status == 400 and f"the {name} header is not UTF-8" in message
        assert headers["x-request-id"]
        assert metric(server, "sluice_ingest_requests_total", form=form,
                      status=str(status)) == 1
    assert producer.sent == [] and _tracebacks(caplog) == []


async def test_an_unexpected_error_is_a_500_with_a_request_id_and_one_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    producer = RecordingProducer()
    producer.error = RuntimeError("something nobody expected\nover two lines")
    async with serving(guard_settings(), producer) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        await client.send(post("/events", EVENT, {"Authorization": f"Bearer {TOKEN}"}))
        status, headers, body = await client.answer()
        client.close()
        assert metric(server, "sluice_ingest_requests_total", form="json", status="500") == 1
    request_id = headers["x-request-id"]
    assert status == 500 and orjson.loads(body)["requestId"] == request_id
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and _tracebacks(caplog) == []
    line = errors[0].getMessage()
    assert request_id in line and "RuntimeError" in line and "\n" not in line


async def test_a_client_that_keeps_failing_authentication_gets_429_before_its_body_is_read(
        ) -> None:
    settings = guard_settings(ingest_auth_failure_burst=3, ingest_auth_failure_rate=0.01,
                              ingest_trusted_proxies=["127.0.0.1"])
    producer = RecordingProducer()
    async with serving(settings, producer) as server:
        client = await RawClient.connect(settings.ingest_port)
        guesser = {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(3):
            await client.send(post("/events", EVENT, {**guesser, "Authorization": "Bearer x"}))
            assert (await client.answer())[0] == 403
        await client.send(post("/events", EVENT, {**guesser, "Authorization": f"Bearer {TOKEN}"}))
        status, headers, body = await client.answer()
        assert status == 429 and int(headers["retry-after"]) >= 1, body
        # Another client address is not held back by the guesser.
        other = {"X-Forwarded-For": "198.51.100.8", "Authorization": f"Bearer {TOKEN}"}
        await client.send(post("/events", EVENT, other))
        assert (await client.answer())[0] == 200
        client.close()
        assert metric(server, "sluice_ingest_requests_total", form="json", status="429") == 1
    assert len(producer.sent) == 1


async def test_a_firehose_refusal_from_the_guard_is_written_in_firehose_form() -> None:
    settings = guard_settings(ingest_auth_failure_burst=1, ingest_auth_failure_rate=0.01)
    async with serving(settings) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        for expected in (403, 429):
            await client.send(post("/firehose", b"{}", {"X-Amz-Firehose-Access-Key": "no",
                                                        "X-Amz-Firehose-Request-Id": "r-\xe9"}))
            status, _, body = await client.answer()
            assert status == expected and orjson.loads(body)["errorMessage"]
        client.close()
    assert ACCESS_KEY != "no"


async def test_a_request_aiohttp_cannot_parse_is_one_line_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(guard_settings()) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        await client.send(b"POST /events HTTP/1.1\r\nHost: x\r\nBad\x01Header: v\r\n"
                          b"Content-Length: 2\r\n\r\n{}")
        status, _, _ = await client.answer()
        client.close()
        assert status == 400
        assert metric(server, "sluice_ingest_requests_total", form="malformed",
                      status="400") == 1
    assert _tracebacks(caplog) == []


async def test_every_answer_carries_a_request_id() -> None:
    async with serving(guard_settings()) as server:
        client = await RawClient.connect(server.settings.ingest_port)
        ids = set()
        for request in (post("/segment", EVENT, {"X-Signature": segment_signature(
                "segment-secret", EVENT)}), post("/nowhere", b"{}"), post("/events", b"{}")):
            await client.send(request)
            status, headers, _ = await client.answer()
            ids.add(headers["x-request-id"])
        client.close()
    assert len(ids) == 3
