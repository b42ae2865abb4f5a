import logging

from worker.ops.logs import RepeatedLineFilter


def _record(name: str, msg: str, created: float, *args: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": name, "msg": msg, "args": args,
                                    "levelno": logging.ERROR})
    record.created = created
    return record


def test_a_library_line_repeated_within_the_window_is_shown_once_then_counted() -> None:
    repeats = RepeatedLineFilter(prefixes=("aiokafka",), window_seconds=30)
    template = "Unable connect to node with id %s: %s"
    shown = [repeats.filter(_record("aiokafka", template, t, 1, "refused")) for t in (0, 1, 2, 29)]
    assert shown == [True, False, False, False]
    later = _record("aiokafka", template, 31, 1, "refused")
    assert repeats.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (and 3 more like it in the last 30s)")


def test_other_templates_and_sluice_lines_are_never_held_back() -> None:
    repeats = RepeatedLineFilter(prefixes=("aiokafka",), window_seconds=30)
    assert repeats.filter(_record("aiokafka.consumer.fetcher", "Failed fetch %s", 0, "a"))
    assert repeats.filter(_record("aiokafka.consumer.fetcher", "Other failure %s", 0, "a"))
    assert all(repeats.filter(_record("worker.app", "draining", t)) for t in (0, 0, 0))
