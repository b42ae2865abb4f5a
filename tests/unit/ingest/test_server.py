"""The HTTP answers of `sluice ingest`, with the broker replaced by a recording stand-in."""

import base64
import gzip
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.recording_producer import RecordingProducer
from worker.config import IngestForm, Settings, load_settings
from worker.ingest.auth import credential_problems, segment_signature
from worker.ingest.errors import IngestStartupError
from worker.ingest.forms import IngestRecord
from worker.ingest.metrics import IngestMetrics
from worker.ingest.run import check_settings
from worker.ingest.server import IngestServer

SECRET, ACCESS_KEY, TOKEN = "segment-secret", "firehose-key", "bearer-token"
EVENT = orjson.dumps({"type": "track", "event": "A", "userId": "u1", "messageId": "m1"})


def _settings(**overrides: object) -> Settings:
    values = {"ingest_segment_shared_secret": SECRET, "ingest_segment_username": "seg",
              "ingest_segment_password": "pw", "ingest_firehose_access_key": ACCESS_KEY,
              "ingest_bearer_tokens": [TOKEN, "old-token"], "ingest_max_body_bytes": 4096}
    return load_settings(**{**values, **overrides})


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
async def client(producer: RecordingProducer) -> AsyncIterator[TestClient]:
    server = IngestServer(_settings(), producer, IngestMetrics(lambda: True))  # type: ignore[arg-type]
    async with TestClient(TestServer(server.application())) as test_client:
        yield test_client


async def test_a_signed_segment_event_is_produced_and_answered_200(
        client: TestClient, producer: RecordingProducer) -> None:
    response = await client.post("/segment", data=EVENT,
                                 headers={"X-Signature": segment_signature(SECRET, EVENT)})
    assert response.status == 200 and await response.json() == {"accepted": 1}
    assert producer.sent == [IngestRecord(b"u1", EVENT)]


async def test_segment_basic_auth_is_accepted(client: TestClient,
                                             producer: RecordingProducer) -> None:
    auth = "Basic " + base64.b64encode(b"seg:pw").decode()
    response = await client.post("/segment", data=EVENT, headers={"Authorization": auth})
    assert response.status == 200 and len(producer.sent) == 1


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"X-Signature": "0" * 40}, 403),
    ({"X-Signature": segment_signature("other secret", EVENT)}, 403),
    ({"Authorization": "Basic " + base64.b64encode(b"seg:wrong").decode()}, 403),
])
async def test_segment_without_or_with_wrong_credentials_is_refused_and_nothing_produced(
        client: TestClient, producer: RecordingProducer, headers: dict, status: int) -> None:
    response = await client.post("/segment", data=EVENT, headers=headers)
    assert response.status == status and "error" in await response.json()
    assert producer.sent == []


def _firehose_body(*payloads: bytes) -> bytes:
    return orjson.dumps({"requestId": "req-7", "timestamp": 1,
                         "records": [{"data": base64.b64encode(p).decode()} for p in payloads]})


@pytest.mark.parametrize("encoding", [None, "GZIP"])
async def test_a_firehose_delivery_is_answered_in_firehose_format(
        client: TestClient, producer: RecordingProducer, encoding: str | None) -> None:
    body = _firehose_body(EVENT, EVENT)
    headers = {"X-Amz-Firehose-Access-Key": ACCESS_KEY, "X-Amz-Firehose-Request-Id": "req-7"}
    if encoding:
        body, headers["Content-Encoding"] = gzip.compress(body), encoding
    response = await client.post("/firehose", data=body, headers=headers)
    answer = await response.json()
    assert response.status == 200, answer
    assert answer["requestId"] == "req-7" and isinstance(answer["timestamp"], int)
    assert "errorMessage" not in answer and len(producer.sent) == 2


@pytest.mark.parametrize("key, status", [(None, 401), ("wrong", 403)])
async def test_a_firehose_delivery_with_a_wrong_access_key_gets_an_error_message(
        client: TestClient, producer: RecordingProducer, key: str | None, status: int) -> None:
    headers = {"X-Amz-Firehose-Request-Id": "req-7"}
    if key:
        headers["X-Amz-Firehose-Access-Key"] = key
    response = await client.post("/firehose", data=_firehose_body(EVENT), headers=headers)
    answer = await response.json()
    assert response.status == status
    assert answer["requestId"] == "req-7" and answer["errorMessage"]
    assert producer.sent == []


async def test_ndjson_with_a_bearer_token_is_one_record_per_line(
        client: TestClient, producer: RecordingProducer) -> None:
    response = await client.post("/events", data=EVENT + b"\n" + EVENT + b"\n",
                                 headers={"Authorization": "Bearer old-token"})
    assert response.status == 200 and len(producer.sent) == 2
    refused = await client.post("/events", data=EVENT, headers={"Authorization": "Bearer x"})
    assert refused.status == 403 and len(producer.sent) == 2


async def test_a_body_above_the_limit_is_refused_413_announced_or_streamed(
        client: TestClient, producer: RecordingProducer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    big = EVENT + b"\n" + b" " * 5000
    response = await client.post("/events", data=big, headers=headers)
    assert response.status == 413 and "SLUICE_INGEST_MAX_BODY_BYTES" in (await response.json())[
        "error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(10):
            yield EVENT + b"\n" + b" " * 1000

    streamed = await client.post("/events", data=chunks(), headers=headers)
    assert streamed.status == 413
    gzipped = await client.post("/events", data=gzip.compress(b" " * 100_000 + EVENT),
                                headers={**headers, "Content-Encoding": "gzip"})
    assert gzipped.status == 413  # the limit applies to the decoded body
    assert producer.sent == []


async def test_a_body_that_is_not_the_form_gets_400_with_the_reason(
        client: TestClient, producer: RecordingProducer) -> None:
    response = await client.post("/events", data=b'{"hello": 1}',
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 400 and "not a Segment event" in (await response.json())["error"]
    bad_gzip = await client.post("/events", data=b"not gzip at all",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Encoding": "gzip"})
    assert bad_gzip.status == 400


async def test_while_the_broker_is_unavailable_requests_get_503_with_retry_after(
        client: TestClient, producer: RecordingProducer) -> None:
    producer.down = True
    response = await client.post("/events", data=EVENT,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    firehose = await client.post("/firehose", data=_firehose_body(EVENT),
                                 headers={"X-Amz-Firehose-Access-Key": ACCESS_KEY})
    assert firehose.status == 503 and (await firehose.json())["requestId"] == "req-7"


async def test_a_form_left_out_answers_404_naming_the_setting(
        producer: RecordingProducer) -> None:
    server = IngestServer(_settings(ingest_forms=[IngestForm.JSON]), producer,  # type: ignore
                          IngestMetrics(lambda: True))
    async with TestClient(TestServer(server.application())) as client:
        response = await client.post("/segment", data=EVENT)
        assert response.status == 404 and "SLUICE_INGEST_FORMS" in (await response.json())["error"]


def test_a_form_without_credentials_refuses_start_up_naming_the_setting() -> None:
    settings = load_settings(ingest_forms=["segment", "firehose"],
                             ingest_firehose_access_key="k")
    assert credential_problems(settings) == [
        "the `segment` form needs SLUICE_INGEST_SEGMENT_SHARED_SECRET or "
        "SLUICE_INGEST_SEGMENT_USERNAME/PASSWORD"]
    with pytest.raises(IngestStartupError, match="SLUICE_INGEST_SEGMENT_SHARED_SECRET"):
        check_settings(settings)
    check_settings(load_settings(ingest_forms=["json"], ingest_bearer_tokens="a,b"))
