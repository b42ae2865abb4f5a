"""The dead-letter safety limit: a ratio over a sliding window, and a count in a row."""

from worker.dead_letter_limit import DeadLetterLimit


def test_the_ratio_is_judged_only_once_the_window_is_full() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=10)
    for _ in range(9):
        assert limit.dead_lettered() is None  # 9 of 9, but the window is not full yet
    reason = limit.dead_lettered()
    assert reason and "SLUICE_DEAD_LETTER_LIMIT_RATIO" in reason and "10 of the last 10" in reason


def test_the_window_slides_so_old_dead_letters_are_forgotten() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=10)
    limit.dead_lettered(5)
    limit.delivered(5)  # 5 of 10: not more than half
    assert limit.tripped is None
    limit.delivered(100)
    limit.dead_lettered(5)  # 5 of the last 10 again, the first five long gone
    assert limit.tripped is None
    assert limit.dead_lettered() is not None  # 6 of the last 10


def test_a_tripped_limit_stays_tripped_whatever_is_delivered_after() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=4)
    limit.dead_lettered(4)
    limit.delivered(1000)
    assert limit.tripped is not None


def test_consecutive_dead_letters_trip_the_count_limit() -> None:
    limit = DeadLetterLimit(max_ratio=0, window=1000, max_consecutive=3)
    limit.dead_lettered(3)
    limit.delivered()
    assert limit.dead_lettered(3) is None
    reason = limit.dead_lettered()
    assert reason and "4 dead letters in a row" in reason


def test_ratio_zero_and_no_count_switch_the_limit_off() -> None:
    limit = DeadLetterLimit(max_ratio=0, window=1)
    assert limit.dead_lettered(10_000) is None and not limit.enabled
