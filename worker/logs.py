"""Log set-up: one place decides how every Sluice process (worker, CLI, demo) writes log lines."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.config import LogFormat, Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the line.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every `extra=` field."""

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
        return orjson.dumps(entry, default=str).decode()


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `dictConfig` dict; Faust's worker applies it too, so its lines match ours."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if settings.log_format == LogFormat.JSON
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sluice": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "sluice",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level.value, "handlers": ["console"]},
        # aiokafka logs every reconnect attempt at WARNING/ERROR; ours say what it means instead.
        # The Elasticsearch client logs every request at INFO (thousands a minute); the sink's
        # own lines and metrics report bulk results.
        "loggers": {"aiokafka": {"level": "WARNING"},
                    "elastic_transport": {"level": "WARNING"}},
    }


def configure_logging(settings: Settings) -> None:
    """Apply the logging configuration to this process."""
    import logging.config

    logging.config.dictConfig(logging_config(settings))
