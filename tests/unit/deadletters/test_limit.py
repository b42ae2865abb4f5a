"""The dead-letter safety limit: a ratio over a sliding window, and a count in a row."""

from worker.deadletters.limit import DeadLetterLimit


def test_the_ratio_is_judged_only_once_the_window_is_full() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=10)
    for _ in range(9):
        assert limit.dead_lettered("decode") is None  # 9 of 9, but the window is not full yet
    reason = limit.dead_lettered("decode")
    assert reason and "SLUICE_DEAD_LETTER_LIMIT_RATIO" in reason
    assert "10 of the last 10 events failed to decode" in reason


def test_the_window_slides_so_old_dead_letters_are_forgotten() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=10)
    limit.dead_lettered("decode", 5)
    limit.decoded(5)  # 5 of 10: not more than half
    assert limit.tripped is None
    limit.decoded(100)
    limit.dead_lettered("decode", 5)  # 5 of the last 10 again, the first five long gone
    assert limit.tripped is None
    assert limit.dead_lettered("decode") is not None  # 6 of the last 10


def test_a_tripped_limit_stays_tripped_whatever_is_delivered_after() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=4)
    limit.dead_lettered("decode", 4)
    limit.decoded(1000)
    assert limit.tripped is not None


def test_consecutive_dead_letters_trip_the_count_limit() -> None:
    limit = DeadLetterLimit(max_ratio=0, window=1000, max_consecutive=3)
    limit.dead_lettered("decode", 3)
    limit.decoded()
    assert limit.dead_lettered("decode", 3) is None
    reason = limit.dead_lettered("decode")
    assert reason and "4 dead letters in a row" in reason


def test_ratio_zero_and_no_count_switch_the_limit_off() -> None:
    limit = DeadLetterLimit(max_ratio=0, window=1)
    assert limit.dead_lettered("decode", 10_000) is None and not limit.enabled


def test_decoding_and_the_sinks_are_judged_apart() -> None:
    # The S3 sink reports deliveries only when a part is uploaded: decode failures meanwhile
    # must be weighed against decoded events, not against deliveries that have not come yet.
    limit = DeadLetterLimit(max_ratio=0.5, window=10)
    limit.decoded(95)
    assert limit.dead_lettered("decode", 5) is None  # 5% malformed, nothing delivered yet
    limit.delivered(4)
    reason = limit.dead_lettered("elasticsearch", 6)
    assert reason and "6 of the last 10 events were refused by a sink" in reason
