"""Log set-up: one place decides how every Sluice process (worker, CLI, demo) writes log lines.

Every line, of Sluice and of the libraries, tracebacks included, goes through a formatter that
shows URLs without their user information (``worker.config.redact_urls``): a client's error
that quotes ``https://user:password@host`` must not put the password in the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from worker.config import LogFormat, Settings, redact_urls
from worker.events import json_codec

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the line.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT` lines, URLs without user information."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every `extra=` field; URLs
    without user information."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json_codec: a field may hold a producer's integer beyond 64 bits (an event id).
        return redact_urls(json_codec.dumps(entry, default=str).decode())


class RepeatedLineFilter(logging.Filter):
    """Lets one line per message template through per window, for the named libraries' loggers.

    While a broker is down aiokafka logs each reconnect attempt, a few hundred ERROR lines a
    minute per worker, all alike; one of each per window says the same. The next line after a
    window says how many were left out.
    """

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",),
                 window_seconds: float = 30.0) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.window_seconds = window_seconds
        self._last_shown: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        shown = self._last_shown.get(key)
        if shown is not None and record.created - shown < self.window_seconds:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last_shown[key] = record.created
        left_out = self._suppressed.pop(key, 0)
        if left_out:
            record.msg = f"{record.msg} (and {left_out} more like it in the last " \
                         f"{self.window_seconds:.0f}s)"
        return True


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `dictConfig` dict; Faust's worker applies it too, so its lines match ours."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if settings.log_format == LogFormat.JSON
        else {"()": f"{__name__}.TextFormatter", "fmt": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sluice": formatter},
        "filters": {"repeats": {"()": f"{__name__}.RepeatedLineFilter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "sluice",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level.value, "handlers": ["console"]},
        # aiokafka logs every reconnect attempt at WARNING/ERROR (RepeatedLineFilter thins them).
        # The Elasticsearch client logs every request at INFO (thousands a minute); the sink's
        # own lines and metrics report bulk results.
        "loggers": {"aiokafka": {"level": "WARNING"},
                    "elastic_transport": {"level": "WARNING"}},
    }


def configure_logging(settings: Settings) -> None:
    """Apply the logging configuration to this process."""
    import logging.config

    logging.config.dictConfig(logging_config(settings))
