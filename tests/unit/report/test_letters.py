from datetime import UTC, datetime

from worker.deadletters.replay import DeadLetterRecord
from worker.report.letters import letter_rows
from worker.report.window import Window


def _letter(failed_at: str, stage: str = "decode") -> DeadLetterRecord:
    return DeadLetterRecord(0, 0, None, b"x", {"stage": stage, "error.class": "InvalidJson",
                                               "failed_at": failed_at, "retriable": "false"})


def test_only_the_letters_that_failed_in_the_window_are_rows() -> None:
    window = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
    letters = [_letter("2026-11-22T09:59:59.999+00:00"), _letter("2026-11-22T10:00:00+00:00"),
               _letter("2026-11-22T10:59:00+00:00", "s3"), _letter("2026-11-22T11:00:00+00:00")]
    assert letter_rows(letters, window) == [
        (datetime(2026, 11, 22, 10, tzinfo=UTC), "decode", "InvalidJson", False),
        (datetime(2026, 11, 22, 10, 59, tzinfo=UTC), "s3", "InvalidJson", False),
    ]


async def test_a_broker_that_cannot_be_reached_leaves_the_panel_empty_with_the_reason() -> None:
    from worker.config import load_settings
    from worker.report.letters import read_letter_rows

    settings = load_settings(kafka_bootstrap_servers="127.0.0.1:1", source_topic="events")
    window = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
    result = await read_letter_rows(settings, window, timeout=5.0)
    assert result.rows == []
    assert result.problem and "events.dlq" in result.problem
    assert "SLUICE_KAFKA_BOOTSTRAP_SERVERS" in result.problem
