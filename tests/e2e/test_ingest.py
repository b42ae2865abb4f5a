"""`sluice ingest` and a worker, end to end: HTTP requests in, every accepted event in
Elasticsearch and S3 exactly once, nothing of a refused request anywhere."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.ingest_traffic import Ingest, access_log, ingest_settings, segment_event
from tests.support.ledger import assert_exactly_once, elasticsearch_ids, s3_ids, topic_values
from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.kafka.group_offsets import group_progress

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_settings(settings: Settings) -> Settings:
    return ingest_settings(settings.model_copy(update={
        "sinks": ["elasticsearch", "s3"], "commit_interval": 0.5, "s3_part_max_age": 2.0,
        "elasticsearch_batch_max_age": 0.3, "ingest_max_body_bytes": 64 * 1024,
    }))


async def _send_everything(ingest: Ingest) -> tuple[set[str], set[str]]:
    """Every form, accepted and refused; (ids accepted with 200, ids of refused requests)."""
    accepted: set[str] = set()
    refused: set[str] = set()
    for n in range(20):  # single Segment events
        event_id, event = segment_event(f"user-{n % 5}")
        status, answer, _ = await ingest.segment(orjson.dumps(event))
        assert (status, answer) == (200, {"accepted": 1})
        accepted.add(event_id)
    for _ in range(5):  # Segment batches of 8
        pairs = [segment_event(f"user-{i}") for i in range(8)]
        body = orjson.dumps({"batch": [e for _, e in pairs], "sentAt": "2026-11-22T20:31:04Z",
                             "context": {"library": {"name": "analytics-node"}}})
        status, answer, _ = await ingest.segment(body)
        assert (status, answer) == (200, {"accepted": 8})
        accepted.update(i for i, _ in pairs)
    for gzipped in (False, True, False, True):  # Firehose deliveries of access logs
        pairs = [access_log() for _ in range(12)]
        status, answer, _ = await ingest.firehose([e for _, e in pairs], gzipped=gzipped)
        assert status == 200 and "errorMessage" not in answer, answer
        accepted.update(i for i, _ in pairs)
    for _ in range(3):  # NDJSON
        pairs = [segment_event("user-nd") for _ in range(6)] + [access_log()]
        status, answer, _ = await ingest.ndjson([e for _, e in pairs])
        assert (status, answer) == (200, {"accepted": 7})
        accepted.update(i for i, _ in pairs)

    bad_id, bad = segment_event("intruder")
    status, _, _ = await ingest.segment(orjson.dumps(bad), secret="not the secret")
    assert status == 403
    refused.add(bad_id)
    pairs = [access_log() for _ in range(3)]
    status, answer, _ = await ingest.firehose([e for _, e in pairs], key="wrong key")
    assert status == 403 and answer["errorMessage"]
    refused.update(i for i, _ in pairs)
    pairs = [segment_event("big") for _ in range(200)]  # about 27 KB of NDJSON per 50
    for event in (e for _, e in pairs):
        event["properties"]["padding"] = "x" * 400
    status, answer, _ = await ingest.ndjson([e for _, e in pairs])
    assert status == 413 and "SLUICE_INGEST_MAX_BODY_BYTES" in answer["error"]
    refused.update(i for i, _ in pairs)
    pairs = [access_log() for _ in range(400)]  # about 100 KB, 12 KB gzipped
    status, answer, _ = await ingest.firehose([e for _, e in pairs], gzipped=True)
    assert status == 413, answer  # the limit counts the decoded body
    refused.update(i for i, _ in pairs)
    return accepted, refused


async def test_requests_of_every_form_reach_both_sinks_exactly_once(
        e2e_settings: Settings, tmp_path: Path) -> None:
    settings = e2e_settings
    ingest_process = SluiceProcess(settings, ["ingest"], tmp_path / "ingest.log")
    worker = SluiceProcess(settings.model_copy(update={"web_port": 0}), ["worker"],
                           tmp_path / "worker.log")
    try:
        ingest_process.wait_for_log(r"ingest: producing to", 60)
        async with aiohttp.ClientSession() as session:
            accepted, refused = await _send_everything(Ingest(settings, session))
            async with session.get(f"http://127.0.0.1:{settings.web_port}/metrics") as metrics:
                text = await metrics.text()
        assert f'sluice_ingest_events_total{{form="segment"}} {20 + 40}.0' in text
        worker.wait_for_log(r"partitions assigned: \S+\[\d", 120)
        await wait_for_no_lag(settings, worker, timeout=120)
        progress = await group_progress(settings, settings.source_topic)
    finally:
        codes = ingest_process.stop(), worker.stop()
    assert codes == (0, 0), (ingest_process.log()[-2000:], worker.log()[-2000:])
    # Exactly the accepted events are on the topic: nothing of a refused request (counted as
    # records, not offsets: each transaction ends with a marker), and the worker's commits
    # reached the end of every partition, past the markers.
    assert len(await topic_values(settings, isolation_level="read_uncommitted")) == \
        len(accepted) == 20 + 40 + 48 + 21
    assert all(p.committed == p.end_offset for p in progress), progress
    assert not accepted & refused
    assert_exactly_once(accepted, await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(accepted, await s3_ids(settings), "S3")
    assert "Traceback" not in ingest_process.log()


def test_ingest_without_credentials_for_a_form_refuses_to_start_naming_the_setting(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "worker", "ingest"],
        env={"SLUICE_INGEST_FORMS": "segment,json", "SLUICE_INGEST_BEARER_TOKENS": "t",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "SLUICE_INGEST_SEGMENT_SHARED_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_on_a_port_in_use_refuses_to_start_naming_the_setting(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "worker", "ingest"],
            env={"SLUICE_INGEST_FORMS": "json", "SLUICE_INGEST_BEARER_TOKENS": "t",
                 "SLUICE_INGEST_HOST": "127.0.0.1", "SLUICE_INGEST_PORT": str(port),
                 "SLUICE_WEB_PORT": "0", "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port} (SLUICE_INGEST_PORT)" in result.stderr
    assert "Traceback" not in result.stderr
