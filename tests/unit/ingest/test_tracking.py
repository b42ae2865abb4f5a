"""Segment's tracking API on `sluice ingest`: paths, write keys, limits, answers, CORS."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.recording_producer import RecordingProducer
from worker.config import IngestForm, Settings, load_settings
from worker.ingest.auth import credential_problems
from worker.ingest.metrics import IngestMetrics
from worker.ingest.server import IngestServer

KEY, OTHER_KEY = "wk-web", "wk-backend"


def _settings(**overrides: object) -> Settings:
    values = {"ingest_forms": [IngestForm.TRACKING, IngestForm.JSON],
              "ingest_bearer_tokens": ["t"],
              "ingest_write_keys": [f"{KEY}=src-web:Web shop", f"{OTHER_KEY}=src-backend"],
              "ingest_cors_origins": ["https://shop.example.com"]}
    return load_settings(**{**values, **overrides})


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


async def _client(settings: Settings, producer: RecordingProducer) -> TestClient:
    server = IngestServer(settings, producer, IngestMetrics(lambda: True))  # type: ignore[arg-type]
    client = TestClient(TestServer(server.application()))
    await client.start_server()
    return client


@pytest.fixture
async def client(producer: RecordingProducer) -> AsyncIterator[TestClient]:
    client = await _client(_settings(), producer)
    yield client
    await client.close()


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _event(user: str = "u1", **extra: object) -> dict:
    return {"type": "track", "event": "Bought", "userId": user, "messageId": f"m-{user}",
            **extra}


async def test_a_batch_with_a_basic_auth_write_key_is_one_record_per_event(
        client: TestClient, producer: RecordingProducer) -> None:
    body = orjson.dumps({"batch": [_event("u1"), _event("u2")], "sentAt": "2026-11-22T10:00:00Z",
                         "context": {"library": {"name": "analytics-python"}}})
    response = await client.post("/v1/batch", data=body, headers=_basic(KEY))
    assert response.status == 200 and await response.json() == {"success": True}
    assert [r.key for r in producer.sent] == [b"u1", b"u2"]
    assert producer.sent[0].value == orjson.dumps(_event("u1"))
    headers = dict(producer.sent[0].headers)
    assert headers["ingest.source_id"] == b"src-web" and headers["ingest.source_name"] == (
        b"Web shop")
    assert headers["ingest.client_ip"] == b"127.0.0.1"
    assert headers["ingest.batch.sent_at"] == b'"2026-11-22T10:00:00Z"'
    assert headers["ingest.received_at"].endswith(b"Z")


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
async def test_every_batch_path_takes_a_gzip_body(client: TestClient,
                                                  producer: RecordingProducer, path: str) -> None:
    body = gzip.compress(orjson.dumps({"batch": [_event()]}))
    response = await client.post(path, data=body,
                                 headers={**_basic(OTHER_KEY), "Content-Encoding": "gzip"})
    assert response.status == 200
    assert dict(producer.sent[0].headers)["ingest.source_id"] == b"src-backend"


@pytest.mark.parametrize("path, call_type", [
    ("/v1/track", "track"), ("/v1/t", "track"), ("/v1/identify", "identify"),
    ("/v1/i", "identify"), ("/v1/page", "page"), ("/v1/p", "page"), ("/v1/screen", "screen"),
    ("/v1/s", "screen"), ("/v1/group", "group"), ("/v1/g", "group"), ("/v1/alias", "alias"),
    ("/v1/a", "alias")])
async def test_a_single_call_without_type_gets_the_paths_type_and_keeps_its_bytes(
        client: TestClient, producer: RecordingProducer, path: str, call_type: str) -> None:
    body = b'{"userId": "u9", "n": 123456789012345678901234567890}'
    response = await client.post(path, data=body, headers=_basic(KEY))
    assert response.status == 200
    assert producer.sent[0].value == (b'{"type":"' + call_type.encode() + b'","userId": "u9", '
                                      b'"n": 123456789012345678901234567890}')


async def test_analytics_js_sends_the_write_key_in_a_text_plain_body(
        client: TestClient, producer: RecordingProducer) -> None:
    body = orjson.dumps({**_event(), "writeKey": KEY, "sentAt": "2026-11-22T10:00:00Z"})
    response = await client.post("/v1/t", data=body, headers={"Content-Type": "text/plain"})
    assert response.status == 200 and producer.sent[0].value == body


@pytest.mark.parametrize("headers, body, status, code", [
    ({}, orjson.dumps({"batch": [_event()]}), 401, "unauthorized"),
    (_basic("nobody"), orjson.dumps({"batch": [_event()]}), 403, "forbidden"),
    ({}, orjson.dumps({"batch": [_event()], "writeKey": "nobody"}), 403, "forbidden"),
    (_basic(KEY), b'{"batch": [', 400, "invalid_request"),
    (_basic(KEY), b'{"batch": 3}', 400, "invalid_request"),
])
async def test_refusals_answer_segments_error_shape_and_produce_nothing(
        client: TestClient, producer: RecordingProducer, headers: dict, body: bytes,
        status: int, code: str) -> None:
    response = await client.post("/v1/batch", data=body, headers=headers)
    answer = await response.json()
    assert response.status == status and answer["code"] == code and answer["success"] is False
    assert answer["message"] and producer.sent == []


async def test_segments_limits_are_400(client: TestClient, producer: RecordingProducer) -> None:
    big_event = _event(properties={"pad": "x" * 33_000})
    single = await client.post("/v1/track", data=orjson.dumps(big_event), headers=_basic(KEY))
    assert single.status == 400 and "MAX_EVENT_BYTES" in (await single.json())["message"]
    in_batch = await client.post("/v1/batch", data=orjson.dumps({"batch": [big_event]}),
                                 headers=_basic(KEY))
    assert in_batch.status == 400 and "batch[0]" in (await in_batch.json())["message"]
    many = orjson.dumps({"batch": [{"type": "track"}] * 2501})
    too_many = await client.post("/v1/batch", data=many, headers=_basic(KEY))
    assert too_many.status == 400 and "2501 events" in (await too_many.json())["message"]
    huge = gzip.compress(orjson.dumps({"batch": [_event(properties={"p": "y" * 30_000})] * 20}))
    too_big = await client.post("/v1/batch", data=huge,
                                headers={**_basic(KEY), "Content-Encoding": "gzip"})
    assert too_big.status == 400 and "MAX_BATCH_BYTES" in (await too_big.json())["message"]
    assert producer.sent == []


async def test_an_event_segment_would_drop_is_still_produced_for_the_dead_letter_topic(
        client: TestClient, producer: RecordingProducer) -> None:
    # No userId nor anonymousId: the worker dead-letters it with the reason, never drops it.
    body = orjson.dumps({"batch": [{"type": "track", "event": "x"}, 7]})
    response = await client.post("/v1/batch", data=body, headers=_basic(KEY))
    assert response.status == 200 and [r.value for r in producer.sent] == [
        b'{"type":"track","event":"x"}', b"7"]


async def test_a_broker_outage_is_503_with_retry_after(client: TestClient,
                                                       producer: RecordingProducer) -> None:
    producer.down = True
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [_event()]}),
                                 headers=_basic(KEY))
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert (await response.json())["code"] == "unavailable"


async def test_an_unknown_call_is_404(client: TestClient) -> None:
    response = await client.post("/v1/purchase", data=b"{}", headers=_basic(KEY))
    assert response.status == 404


# --- browsers ------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin_is_answered(client: TestClient) -> None:
    response = await client.options("/v1/t", headers={
        "Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


async def test_a_preflight_from_another_origin_is_refused(client: TestClient) -> None:
    response = await client.options("/v1/t", headers={
        "Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"})
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers


async def test_answers_to_an_allowed_origin_carry_cors_headers_errors_included(
        client: TestClient, producer: RecordingProducer) -> None:
    origin = {"Origin": "https://shop.example.com"}
    ok = await client.post("/v1/t", data=orjson.dumps({**_event(), "writeKey": KEY}),
                           headers=origin)
    refused = await client.post("/v1/t", data=b"{}", headers=origin)
    for response in (ok, refused):
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert (ok.status, refused.status) == (200, 401)


async def test_the_settings_document_points_analytics_js_back_at_sluice(
        client: TestClient) -> None:
    response = await client.get(f"/v1/projects/{KEY}/settings",
                                headers={"Origin": "https://shop.example.com"})
    settings = await response.json()
    segment = settings["integrations"]["Segment.io"]
    assert response.status == 200 and segment["apiKey"] == KEY
    assert segment["apiHost"] == f"{client.host}:{client.port}/v1"
    assert segment["protocol"] == "http" and settings["metrics"]["sampleRate"] == 0
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    unknown = await client.get("/v1/projects/nobody/settings")
    assert unknown.status == 404


async def test_the_public_url_setting_names_the_api_host(producer: RecordingProducer) -> None:
    client = await _client(_settings(ingest_tracking_public_url="https://collect.example.com"),
                           producer)
    try:
        settings = await (await client.get(f"/v1/projects/{KEY}/settings")).json()
    finally:
        await client.close()
    segment = settings["integrations"]["Segment.io"]
    assert (segment["protocol"], segment["apiHost"]) == ("https", "collect.example.com/v1")


# --- write keys ----------------------------------------------------------------------------


async def test_a_write_key_file_is_read_again_when_it_changes_without_a_restart(
        tmp_path: Path, producer: RecordingProducer, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.ingest import write_keys

    monkeypatch.setattr(write_keys, "CHECK_INTERVAL", 0.0)
    keys = tmp_path / "write-keys"
    keys.write_text("# key source name\nwk-old src-app Mobile app\n")
    client = await _client(_settings(ingest_write_keys=[], ingest_write_keys_file=keys), producer)
    body = orjson.dumps({"batch": [_event()]})
    try:
        assert (await client.post("/v1/batch", data=body, headers=_basic("wk-old"))).status == 200
        assert (await client.post("/v1/batch", data=body, headers=_basic("wk-new"))).status == 403
        keys.write_text("wk-new src-app Mobile app\n")  # rotated: the old key removed
        assert (await client.post("/v1/batch", data=body, headers=_basic("wk-new"))).status == 200
        assert (await client.post("/v1/batch", data=body, headers=_basic("wk-old"))).status == 403
        keys.write_text("only-a-key\n")  # a bad edit (no source id) keeps the keys in force
        assert (await client.post("/v1/batch", data=body, headers=_basic("wk-new"))).status == 200
    finally:
        await client.close()
    assert dict(producer.sent[-1].headers)["ingest.source_name"] == b"Mobile app"


def test_the_tracking_form_needs_write_keys_and_a_readable_file(tmp_path: Path) -> None:
    assert any("SLUICE_INGEST_WRITE_KEYS" in problem for problem in credential_problems(
        _settings(ingest_write_keys=[])))
    missing = _settings(ingest_write_keys=[], ingest_write_keys_file=tmp_path / "absent")
    assert any("cannot read" in problem for problem in credential_problems(missing))
    bad = tmp_path / "bad"
    bad.write_text("only-a-key\n")
    assert any(f"{bad}:1" in problem for problem in credential_problems(
        _settings(ingest_write_keys=[], ingest_write_keys_file=bad)))


def test_a_malformed_write_key_setting_names_the_setting() -> None:
    from worker.config import SettingsError

    with pytest.raises(SettingsError, match="SLUICE_INGEST_WRITE_KEYS"):
        _settings(ingest_write_keys=["no-source-here"])


async def test_the_tracking_paths_say_how_to_enable_them_when_disabled(
        producer: RecordingProducer) -> None:
    client = await _client(_settings(ingest_forms=[IngestForm.JSON]), producer)
    try:
        response = await client.post("/v1/batch", data=b"{}")
        assert response.status == 404 and "SLUICE_INGEST_FORMS" in (await response.json())[
            "error"]
    finally:
        await client.close()


async def test_a_batchs_context_counts_toward_each_events_limit(
        client: TestClient, producer: RecordingProducer) -> None:
    # The context is copied onto every record: 2,000 tiny events must not each carry 32 KB.
    body = orjson.dumps({"batch": [_event(f"u{n}") for n in range(2000)],
                         "context": {"pad": "z" * 32_700}})
    response = await client.post("/v1/batch", data=body, headers=_basic(KEY))
    assert response.status == 400 and "context and sentAt" in (await response.json())["message"]
    assert producer.sent == []


async def test_a_single_call_holding_a_batch_is_refused(client: TestClient) -> None:
    response = await client.post("/v1/track", data=orjson.dumps({"batch": [_event()]}),
                                 headers=_basic(KEY))
    assert response.status == 400 and "/v1/batch" in (await response.json())["message"]
