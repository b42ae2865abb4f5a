"""The pipeline in-process, with a counting sink and a dead-letter publisher that records."""

import orjson
import pytest

from worker.catalog.entries import CatalogEntry
from worker.config import load_settings
from worker.events.records import DeadLetter, KafkaPosition, SourceRecord
from worker.pipeline.wiring import Pipeline
from worker.sinks.counting import CountingSink

TRACK = {"type": "track", "event": "Signed Up", "userId": "u1"}


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


def _record(value: object, offset: int, partition: int = 0) -> SourceRecord:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return SourceRecord(None, raw, KafkaPosition("events", partition, offset), 1_795_000_000_000)


@pytest.fixture
def parts():
    settings = load_settings(max_in_flight_records=100)
    dead_letters = RecordingDeadLetters()
    catalog = {"key-1": CatalogEntry(api_key_id="key-1", customer_name="Acme")}
    pipeline = Pipeline(settings, dead_letters, catalog.get)  # type: ignore[arg-type]
    sink = pipeline.add_sink(
        lambda outcomes: CountingSink(
            outcomes, max_batch=1000, max_age_seconds=60,
            reject=lambda e: "too expensive" if e.document.get("event") == "Rejected" else None,
        )
    )
    pipeline.assign([("events", 0), ("events", 1)])
    return pipeline, sink, dead_letters


async def test_events_are_acknowledged_only_after_the_sink_flushes(parts) -> None:
    pipeline, sink, _ = parts
    acked: list[int] = []
    await pipeline.submit(_record(TRACK, 0), lambda: acked.append(0))
    assert acked == [] and pipeline.acks.in_flight == 1
    await sink.flush()
    assert acked == [0] and sink.counts["track"] == 1


async def test_undecodable_record_goes_to_dead_letters_and_is_acknowledged(parts) -> None:
    pipeline, _, dead_letters = parts
    acked: list[int] = []
    await pipeline.submit(_record(b"{broken", 0), lambda: acked.append(0))
    (letter,) = dead_letters.letters
    assert (letter.stage, letter.error_class, letter.record.value) == ("decode", "InvalidJson",
                                                                         b"{broken")
    assert acked == [0]


async def test_batch_with_a_bad_event_dead_letters_it_and_delivers_the_rest(parts) -> None:
    pipeline, sink, dead_letters = parts
    acked: list[int] = []
    batch = {"batch": [TRACK, {"type": "track", "userId": "u2"}, {**TRACK, "userId": "u3"}]}
    await pipeline.submit(_record(batch, 0), lambda: acked.append(0))
    (letter,) = dead_letters.letters
    assert (letter.batch_index, letter.error_class) == (1, "MissingField")
    assert acked == []  # two events still wait for the sink
    await sink.flush()
    assert sink.counts["track"] == 2 and acked == [0]


async def test_sink_rejection_dead_letters_with_the_sink_as_stage(parts) -> None:
    pipeline, sink, dead_letters = parts
    acked: list[int] = []
    await pipeline.submit(_record({**TRACK, "event": "Rejected", "messageId": "m-9"}, 0),
                          lambda: acked.append(0))
    await sink.flush()
    (letter,) = dead_letters.letters
    assert (letter.stage, letter.error_class, letter.event_id) == ("counting", "SinkRejected",
                                                                    "m-9")
    assert acked == [0]


async def test_access_logs_are_enriched_or_counted_as_unenriched(parts) -> None:
    pipeline, sink, _ = parts
    delivered = []
    sink.record_path = None
    original = pipeline.delivered
    pipeline.delivered = lambda name, events: (delivered.extend(events), original(name, events))
    await pipeline.submit(_record({"requestId": "r1", "apiKeyId": "key-1"}, 0), lambda: None)
    await pipeline.submit(_record({"requestId": "r2", "apiKeyId": "key-x"}, 1), lambda: None)
    await sink.flush()
    assert [(e.document["enriched"], e.document.get("customer_name")) for e in delivered] == [
        (True, "Acme"), (False, None)
    ]
    assert pipeline.progress.counts["unenriched"] == 1


async def test_acknowledgements_follow_offset_order_across_decode_and_sink_paths(parts) -> None:
    pipeline, sink, _ = parts
    acked: list[int] = []
    await pipeline.submit(_record(TRACK, 0), lambda: acked.append(0))        # waits for sink
    await pipeline.submit(_record(b"[1]", 1), lambda: acked.append(1))       # dead-lettered now
    assert acked == []
    await sink.flush()
    assert acked == [0, 1]


async def test_revoked_partition_records_are_never_acknowledged(parts) -> None:
    pipeline, sink, _ = parts
    acked: list[int] = []
    await pipeline.submit(_record(TRACK, 0), lambda: acked.append(0))
    await pipeline.forget({("events", 0)})
    await sink.flush()
    assert acked == [] and sink.counts["track"] == 0


class _Raw(str):
    """A JSON text spliced into the record as is (orjson cannot write what we test)."""


def _nested(depth: int) -> _Raw:
    return _Raw('{"a":' * depth + "{}" + "}" * depth)


@pytest.mark.parametrize(
    ("fields", "error_class"),
    [
        ({"timestamp": "0005-01-01T00:00:00Z"}, "InvalidTimestamp"),
        ({"timestamp": -60_000_000_000}, "InvalidTimestamp"),
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "InvalidTimestamp"),
        ({"timestamp": "²"}, "InvalidTimestamp"),
        ({"properties": _nested(300)}, "UnencodableEvent"),
    ],
    ids=["year-5", "far-negative-epoch", "year-1-with-offset", "superscript-digit", "too-deep"],
)
async def test_hostile_fields_are_dead_lettered_never_crash(parts, fields, error_class) -> None:
    pipeline, sink, dead_letters = parts
    acked: list[int] = []
    value = orjson.dumps({**TRACK, **{k: v for k, v in fields.items()
                                       if not isinstance(v, _Raw)}})
    for key, raw in fields.items():
        if isinstance(raw, _Raw):
            value = value[:-1] + f',"{key}":{raw}}}'.encode()
    await pipeline.submit(_record(value, 0), lambda: acked.append(0))
    (letter,) = dead_letters.letters
    assert letter.error_class == error_class
    assert acked == [0]


async def test_access_log_status_with_odd_digits_is_a_wrong_type(parts) -> None:
    pipeline, _, dead_letters = parts
    await pipeline.submit(_record({"requestId": "r", "status": "--5"}, 0), lambda: None)
    await pipeline.submit(_record({"requestId": "r2", "status": "²"}, 1), lambda: None)
    assert [letter.error_class for letter in dead_letters.letters] == ["WrongType", "WrongType"]


async def test_records_after_the_pipeline_closed_are_left_unacknowledged(parts) -> None:
    pipeline, _, dead_letters = parts
    await pipeline.stop()
    acked: list[int] = []
    await pipeline.submit(_record(b"{bad", 0), lambda: acked.append(0))
    assert acked == [] and dead_letters.letters == []


async def test_replayed_record_goes_only_to_the_sink_that_failed_it(parts) -> None:
    from dataclasses import replace

    pipeline, sink, dead_letters = parts
    archive = pipeline.add_sink(lambda outcomes: CountingSink(outcomes, max_age_seconds=60))
    archive.name = "archive"
    acked: list[int] = []
    replayed = replace(_record({**TRACK, "messageId": "m-1"}, 0),
                       headers=(("sluice.replay.sinks", b"counting"),))
    await pipeline.submit(replayed, lambda: acked.append(0))
    await pipeline.submit(_record({**TRACK, "messageId": "m-2"}, 1), lambda: acked.append(1))
    await sink.flush()
    await archive.flush()
    assert sink.counts["track"] == 2  # the replay and the ordinary record
    assert archive.counts["track"] == 1  # only the ordinary record: it had the replay already
    assert acked == [0, 1] and dead_letters.letters == []


async def test_replay_for_a_sink_this_worker_lacks_is_dead_lettered_for_that_sink(parts) -> None:
    from dataclasses import replace

    pipeline, sink, dead_letters = parts
    acked: list[int] = []
    replayed = replace(_record({**TRACK, "messageId": "m-1"}, 0),
                       headers=(("sluice.replay.sinks", b"elasticsearch"),))
    await pipeline.submit(replayed, lambda: acked.append(0))
    await sink.flush()
    assert sink.counts["track"] == 0
    (letter,) = dead_letters.letters
    assert (letter.stage, letter.error_class, letter.retriable) == (
        "elasticsearch", "SinkUnavailable", True)
    assert "SLUICE_SINKS" in letter.message
    assert acked == [0]


async def test_a_stream_of_bad_records_trips_the_dead_letter_limit_and_commits_nothing_past_it(
) -> None:
    import asyncio

    settings = load_settings(dead_letter_limit_ratio=0.5, dead_letter_limit_window=10)
    dead_letters = RecordingDeadLetters()
    pipeline = Pipeline(settings, dead_letters, {}.get)  # type: ignore[arg-type]
    sink = pipeline.add_sink(lambda outcomes: CountingSink(outcomes, max_age_seconds=60))
    pipeline.assign([("events", 0)])
    for offset in range(4):
        await pipeline.submit(_record(TRACK, offset))
    await sink.flush()
    # Good records 0-3, then every record broken: the 6th dead letter makes 6 of the last 10.
    for offset in range(4, 9):
        await pipeline.submit(_record(b"{broken", offset))
    assert pipeline.committable(("events", 0)) == 9 and pipeline.dead_letter_limit.tripped is None
    held = asyncio.ensure_future(pipeline.submit(_record(b"{broken", 9)))
    await asyncio.sleep(0.05)
    assert not held.done()  # the agent waits: consumption pauses
    assert "SLUICE_DEAD_LETTER_LIMIT_RATIO" in (pipeline.dead_letter_limit.tripped or "")
    assert len(dead_letters.letters) == 5  # the sixth is neither written …
    assert pipeline.committable(("events", 0)) == 9  # … nor acknowledged
    await pipeline.forget([("events", 0)])  # a revoke lets the agent go, still unacknowledged
    await asyncio.wait_for(held, 5)
    assert len(dead_letters.letters) == 5


async def test_a_dead_letter_limit_tripped_at_a_sink_pauses_the_agent_at_once() -> None:
    """Issue 26 (13): a sink reports its dead letters off the agent's path (here at its flush):
    once they trip the limit, the next batch must not be opened, as at decode, instead of the
    agent consuming on up to SLUICE_MAX_IN_FLIGHT_RECORDS."""
    import asyncio

    settings = load_settings(dead_letter_limit_ratio=0.5, dead_letter_limit_window=10,
                             max_in_flight_records=1000)
    dead_letters = RecordingDeadLetters()
    pipeline = Pipeline(settings, dead_letters, {}.get)  # type: ignore[arg-type]
    sink = pipeline.add_sink(lambda outcomes: CountingSink(
        outcomes, max_batch=1000, max_age_seconds=60,
        reject=lambda e: "refused" if e.document.get("event") == "Rejected" else None))
    pipeline.assign([("events", 0)])
    for offset in range(4):
        await pipeline.submit(_record(TRACK, offset))
    for offset in range(4, 14):
        await pipeline.submit(_record({**TRACK, "event": "Rejected"}, offset))
    flushing = asyncio.ensure_future(sink.flush())  # the sink's refusals trip the limit
    for _ in range(100):
        if pipeline.dead_letter_limit.tripped:
            break
        await asyncio.sleep(0.01)
    assert "SLUICE_DEAD_LETTER_LIMIT_RATIO" in (pipeline.dead_letter_limit.tripped or "")
    in_flight = pipeline.acks.in_flight
    agent = asyncio.ensure_future(pipeline.submit(_record(TRACK, 14)))
    await asyncio.sleep(0.05)
    assert not agent.done()  # the agent waits: consumption pauses …
    assert pipeline.acks.in_flight == in_flight  # … and nothing more is opened
    await pipeline.forget([("events", 0)])  # a revocation lets both go, unacknowledged
    await asyncio.wait_for(asyncio.gather(agent, flushing), 5)
    assert pipeline.acks.in_flight == 0 and pipeline.committable(("events", 0)) is None


async def test_a_record_replayed_for_another_consumer_group_is_skipped_and_acknowledged(
    parts,
) -> None:
    """Issue 26 (5): each group replays its own dead letters; the other groups reading the
    source topic leave the replayed record alone (no event, no dead letter of their own)."""
    from dataclasses import replace

    pipeline, sink, dead_letters = parts
    acked: list[int] = []
    group = pipeline.settings.app_id
    theirs = replace(_record(b"{broken", 0), headers=(("sluice.replay.group", b"other"),))
    ours = replace(_record({**TRACK, "messageId": "m-1"}, 1),
                   headers=(("sluice.replay.group", group.encode()),))
    await pipeline.submit(theirs, lambda: acked.append(0))
    await pipeline.submit(ours, lambda: acked.append(1))
    await sink.flush()
    assert acked == [0, 1]
    assert dead_letters.letters == [] and sink.counts["track"] == 1
    assert pipeline.progress.counts["replays_of_other_groups"] == 1
