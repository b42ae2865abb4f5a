"""Hostile input mixed into good traffic: every bad record is dead-lettered with a reason, every
good event arrives, and the worker neither crashes nor restarts its agent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.processes import SluiceProcess, wait_for_no_lag
from worker.config import Settings
from worker.deadletters.replay import dead_letter_end_offsets, read_dead_letters
from worker.kafka.connection import client_options
from worker.kafka.topics import ensure_topics
from worker.local.samples import malformed_records

pytestmark = pytest.mark.e2e


def _hostile_corpus() -> list[tuple[str, bytes]]:
    """(expected error class, value) of records no worker may choke on."""
    corpus = [(m.error_class, m.value) for m in malformed_records(nonce=9, oversize_bytes=80_000)]
    deep = b'{"type":"track","event":"E","userId":"u","properties":' + b'{"a":' * 300 + b"{}" \
        + b"}" * 300 + b"}"
    corpus += [
        ("UnencodableEvent", deep),
        ("InvalidJson", b"[" * 5000),                                   # deeper than any parser
        ("InvalidTimestamp", orjson.dumps({"type": "track", "event": "E", "userId": "u",
                                           "timestamp": "0001-01-01T00:00:00+01:00"})),
        ("WrongType", orjson.dumps({"requestId": "r", "status": "²"})),
        ("InvalidBase64", orjson.dumps("this is not base64 at all?")),
        ("NotAnObject", b"null"),
        ("WrongType", orjson.dumps({"type": "identify", "userId": "u", "traits": "x" * 60_000})),
    ]
    return corpus


async def test_hostile_records_are_dead_lettered_and_good_traffic_flows(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "max_record_bytes": 64 * 1024, "counting_sink_record_path": tmp_path / "delivered.ndjson",
        "counting_sink_flush_interval": 0.3, "commit_interval": 0.5,
        # Hostile on purpose: the dead-letter limit (tests/integration/test_dead_letter_limit.py)
        # would rightly stop a worker fed mostly bad records; here every one must be judged.
        "dead_letter_limit_ratio": 0.0})
    await ensure_topics(settings)
    before = await dead_letter_end_offsets(settings)
    corpus = _hostile_corpus()
    good_ids: set[str] = set()
    # A giant batch (600 events, just under SLUICE_MAX_RECORD_BYTES), every hundredth one bad.
    giant = []
    for index in range(600):
        event = {"type": "track", "event": "Bulk", "userId": "u", "messageId": f"giant-{index}"}
        if index % 100 == 0:
            del event["event"]
        else:
            good_ids.add(event["messageId"])
        giant.append(event)

    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    producer = AIOKafkaProducer(**client_options(settings),
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        worker.wait_for_log(r"partitions assigned: \S+\[0,1,2,3\]")
        for round_number in range(3):
            for index, (_, value) in enumerate(corpus):
                event_id = f"good-{round_number}-{index}"
                good_ids.add(event_id)
                good = {"type": "track", "event": "Ok", "userId": "u", "messageId": event_id}
                await producer.send_and_wait(settings.source_topic, orjson.dumps(good),
                                             key=event_id.encode())
                await producer.send_and_wait(settings.source_topic, value, key=None)
        await producer.send_and_wait(settings.source_topic, orjson.dumps({"batch": giant}))
        await wait_for_no_lag(settings, worker)
    finally:
        await producer.stop()
        exit_code = worker.stop()
    log = worker.log()
    assert exit_code == 0, log[-3000:]
    assert "Traceback" not in log and log.count("[^-SluiceApp]: Starting") == 1

    delivered = [orjson.loads(line)["event_id"]
                 for line in (tmp_path / "delivered.ndjson").read_bytes().splitlines()]
    assert sorted(delivered) == sorted(good_ids)

    after = await dead_letter_end_offsets(settings)
    letters = [d.headers for d in await read_dead_letters(settings, before, after)]
    expected = sorted([error for error, _ in corpus] * 3 + ["MissingField"] * 6)
    assert sorted(letter["error.class"] for letter in letters) == expected
    assert all(letter["error.message"] for letter in letters)
