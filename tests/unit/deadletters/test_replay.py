from datetime import UTC, datetime

import orjson

from worker.deadletters.replay import DeadLetterFilter, DeadLetterRecord, inspect, replay_value


def _letter(stage: str, error: str, failed_at: str, value: bytes = b"{}",
            batch_index: str | None = None, offset: int = 0) -> DeadLetterRecord:
    headers = {"stage": stage, "error.class": error, "failed_at": failed_at}
    if batch_index is not None:
        headers["batch_index"] = batch_index
    return DeadLetterRecord(0, offset, None, value, headers)


LETTERS = [
    _letter("decode", "InvalidJson", "2026-11-22T10:00:00.000+00:00", offset=0),
    _letter("decode", "InvalidJson", "2026-11-22T11:00:00.000+00:00", offset=1),
    _letter("elasticsearch", "SinkRejected", "2026-11-22T12:00:00.000+00:00", offset=2),
]


def test_inspect_counts_by_stage_and_error_class_with_samples() -> None:
    result = inspect(LETTERS, DeadLetterFilter(), samples_per_class=1)
    assert result.counts == {("decode", "InvalidJson"): 2,
                             ("elasticsearch", "SinkRejected"): 1}
    assert [s.offset for s in result.samples[("decode", "InvalidJson")]] == [0]


def test_filter_by_stage_class_and_time() -> None:
    since = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    until = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    chosen = [letter.offset for letter in LETTERS
              if DeadLetterFilter(since=since, until=until).matches(letter)]
    assert chosen == [1]
    assert [letter.offset for letter in LETTERS if DeadLetterFilter(
        stages=frozenset({"elasticsearch"})).matches(letter)] == [2]


def test_replay_of_one_batch_event_sends_only_that_event_with_the_shared_context() -> None:
    batch = {"batch": [{"type": "track", "messageId": "good"},
                       {"type": "track", "messageId": "bad", "context": {"ip": "1.1.1.1"}}],
             "context": {"library": "x", "ip": "9.9.9.9"}, "sentAt": "2026-11-22T10:00:00Z"}
    letter = _letter("decode", "MissingField", "2026-11-22T10:00:00.000+00:00",
                     orjson.dumps(batch), batch_index="1")
    assert orjson.loads(replay_value(letter)) == {
        "type": "track", "messageId": "bad", "context": {"library": "x", "ip": "1.1.1.1"},
        "sentAt": "2026-11-22T10:00:00Z"}


def test_replay_of_a_whole_record_sends_its_bytes_unchanged() -> None:
    letter = _letter("decode", "InvalidJson", "2026-11-22T10:00:00.000+00:00", b"{broken")
    assert replay_value(letter) == b"{broken"


def test_inspect_sample_tells_null_from_empty_and_shows_the_batch_index() -> None:
    from worker.deadletters.replay import describe_sample

    def sample(value: bytes | None, batch_index: str | None = None) -> list[str]:
        headers = {"source.topic": "events", "source.partition": "2", "source.offset": "7",
                   "error.message": "no good"}
        if batch_index is not None:
            headers["batch_index"] = batch_index
        return describe_sample(DeadLetterRecord(0, 0, None, value, headers))

    assert sample(None) == ["events[2]@7: no good", "  value: null (no value)"]
    assert sample(b"") == ["events[2]@7: no good", "  value: empty (0 bytes)"]
    assert sample(b'{"batch": []}', "3") == ["events[2]@7 batch[3]: no good",
                                             """  value: '{"batch": []}'"""]
    assert sample(b"x" * 100)[1] == f"  value: {'x' * 80!r} … (100 bytes)"


def test_replay_of_a_sink_failure_names_that_sink_and_a_decode_failure_none() -> None:
    from worker.deadletters.replay import replay_headers

    sink_letter = DeadLetterRecord(1, 5, None, b"{}", {"stage": "elasticsearch"},
                                   (("trace", b"abc"),))
    assert replay_headers(sink_letter, "events.dlq") == [
        ("trace", b"abc"), ("sluice.replayed_from", b"events.dlq/1/5"),
        ("sluice.replay.count", b"1"), ("sluice.first_failure.stage", b"elasticsearch"),
        ("sluice.first_failure.class", b"?"), ("sluice.replay.sinks", b"elasticsearch")]
    decode_letter = DeadLetterRecord(1, 6, None, b"{", {"stage": "decode"})
    assert [name for name, _ in replay_headers(decode_letter, "events.dlq")] == [
        "sluice.replayed_from", "sluice.replay.count", "sluice.first_failure.stage",
        "sluice.first_failure.class"]


def test_a_second_replay_counts_up_and_keeps_the_first_failure_and_the_event_id() -> None:
    from worker.deadletters.replay import replay_headers

    first = DeadLetterRecord(0, 3, None, b"{}", {
        "stage": "decode", "error.class": "InvalidJson", "failed_at": "2026-11-22T10:00:00Z"})
    replayed = dict(replay_headers(first, "events.dlq"))
    # The replayed record fails again, at a sink this time: its dead letter keeps the lineage.
    second = DeadLetterRecord(0, 9, None, b"{}", {
        **{name.removeprefix("sluice."): value.decode() for name, value in replayed.items()},
        "stage": "elasticsearch", "error.class": "SinkRejected", "event_id": "derived-1",
        "failed_at": "2026-11-23T10:00:00Z"})
    again = dict(replay_headers(second, "events.dlq"))
    assert again["sluice.replay.count"] == b"2"
    assert again["sluice.first_failure.stage"] == b"decode"
    assert again["sluice.first_failure.class"] == b"InvalidJson"
    assert again["sluice.first_failure.at"] == b"2026-11-22T10:00:00Z"
    assert again["sluice.replay.event_id"] == b"derived-1"
    assert again["sluice.replayed_from"] == b"events.dlq/0/9"


def test_replaying_one_log_event_of_a_cloudwatch_record_sends_that_event_alone() -> None:
    import gzip

    from tests.support.cloudwatch import documented_example, gzipped

    example = documented_example()
    letter = DeadLetterRecord(0, 3, None, gzipped(example), {"batch_index": "1"})
    replayed = orjson.loads(gzip.decompress(replay_value(letter) or b""))
    assert replayed["logEvents"] == [example["logEvents"][1]]
    assert replayed["logGroup"] == example["logGroup"]


def _grouped(group: str | None, offset: int, stage: str = "decode") -> DeadLetterRecord:
    headers = {"stage": stage, "error.class": "InvalidJson",
               "failed_at": "2026-11-22T10:00:00.000+00:00"}
    if group is not None:
        headers["worker.group"] = group
    return DeadLetterRecord(0, offset, None, b"{", headers)


def test_dead_letters_are_selected_by_the_consumer_group_that_wrote_them() -> None:
    # Two groups on one source topic (one writing Elasticsearch, one S3) each dead-letter a
    # record both fail: a command for one group must not take the other's letter too.
    letters = [_grouped("archive", 0), _grouped("search", 1), _grouped(None, 2)]
    mine = DeadLetterFilter(groups=frozenset({"search"}))
    assert [letter.offset for letter in letters if mine.matches(letter)] == [1]
    assert [letter.offset for letter in letters if DeadLetterFilter().matches(letter)] == [
        0, 1, 2]
    result = inspect(letters, mine)
    assert result.counts == {("decode", "InvalidJson"): 1}
    assert result.other_groups == {"archive": 1, None: 1}


def test_a_replayed_record_names_the_group_whose_dead_letter_it_was() -> None:
    from worker.deadletters.replay import replay_headers

    headers = dict(replay_headers(_grouped("search", 4, stage="elasticsearch"), "events.dlq"))
    assert headers["sluice.replay.group"] == b"search"
    assert headers["sluice.replay.sinks"] == b"elasticsearch"
    # A retired group's letter sent to the group that replaced it.
    moved = dict(replay_headers(_grouped("search", 4), "events.dlq", to_group="search-v2"))
    assert moved["sluice.replay.group"] == b"search-v2"
    # A letter that names no group (not written by a Sluice worker) goes back to every group.
    assert "sluice.replay.group" not in dict(replay_headers(_grouped(None, 5), "events.dlq"))
