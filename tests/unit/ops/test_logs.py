import logging

import pytest

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


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_show_urls_without_user_information_tracebacks_included(
    log_format: str,
) -> None:
    import importlib
    import sys

    from worker.config import load_settings
    from worker.ops.logs import logging_config

    # The formatter exactly as the configuration builds it (without touching the process's
    # logging): its factory and arguments.
    spec = dict(logging_config(load_settings(log_format=log_format))["formatters"]["sluice"])
    module, _, name = spec.pop("()").rpartition(".")
    formatter = getattr(importlib.import_module(module), name)(**spec)
    try:
        raise ConnectionError("cannot reach https://elastic:pa/ss@es:9200")
    except ConnectionError:
        record = logging.makeLogRecord({
            "name": "elastic_transport", "levelno": logging.ERROR, "levelname": "ERROR",
            "msg": "POST %s failed", "args": ("https://elastic:p@ss@es:9200/_bulk",),
            "exc_info": sys.exc_info()})
    line = formatter.format(record)
    assert "pa/ss" not in line and "p@ss" not in line and "elastic:" not in line
    assert "https://***@es:9200/_bulk" in line and "https://***@es:9200" in line


def test_a_json_line_keeps_an_integer_beyond_64_bits_exactly() -> None:
    # A dead letter's log line may carry a producer's id: orjson alone refuses such an int, and
    # the logging module then prints its own traceback instead of the line.
    from worker.ops.logs import JsonFormatter

    record = logging.makeLogRecord({"msg": "dead letter", "levelname": "WARNING",
                                    "event_id": 123456789012345678901234567890,
                                    "where": object()})
    line = JsonFormatter().format(record)
    assert '"event_id":123456789012345678901234567890' in line
    assert '"where":"<object object at' in line
