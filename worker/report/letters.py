"""The dead letters of the report's range, read from the dead-letter topic into the
``dead_letters`` table.

The topic is read as ``sluice dlq inspect`` reads it (``worker.deadletters.replay``), from its
start, and a letter counts when its ``sluice.failed_at`` lies in the range. A broker that cannot
be reached does not stop the report: the panel says why it is empty instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import duckdb

from worker.config import Settings
from worker.deadletters.replay import DeadLetterFilter, DeadLetterRecord, read_dead_letters
from worker.report.window import Window

# How long the report waits for the dead-letter topic before it gives up on the panel.
READ_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class LetterRows:
    """The letters of the range as rows, or why there are none to show."""

    rows: list[tuple[object, ...]]
    problem: str | None = None


def letter_rows(letters: list[DeadLetterRecord], window: Window) -> list[tuple[object, ...]]:
    """(failed_at, stage, error_class, retriable) of each letter that failed in the window."""
    selection = DeadLetterFilter(since=window.since, until=window.until)
    return [(letter.failed_at, letter.stage, letter.error_class,
             letter.headers.get("retriable") == "true")
            for letter in letters if selection.matches(letter)]


async def read_letter_rows(settings: Settings, window: Window,
                           timeout: float = READ_TIMEOUT) -> LetterRows:
    """The window's letters, or the reason they could not be read."""
    try:
        letters = await asyncio.wait_for(read_dead_letters(settings), timeout)
    except TimeoutError:
        return LetterRows([], f"the dead-letter topic {settings.dead_letter_topic_name} did not "
                              f"answer within {timeout:.0f} s (SLUICE_KAFKA_BOOTSTRAP_SERVERS)")
    except Exception as error:  # noqa: BLE001 (any client failure: the report goes on)
        return LetterRows([], f"the dead-letter topic {settings.dead_letter_topic_name} could "
                              f"not be read: {error} (SLUICE_KAFKA_BOOTSTRAP_SERVERS, "
                              "SLUICE_DEAD_LETTER_TOPIC)")
    return LetterRows(letter_rows(letters, window))


def create_letters_table(connection: duckdb.DuckDBPyConnection,
                         rows: list[tuple[object, ...]]) -> None:
    connection.execute("CREATE TABLE dead_letters (failed_at TIMESTAMPTZ, stage VARCHAR, "
                       "error_class VARCHAR, retriable BOOLEAN)")
    if rows:
        connection.executemany("INSERT INTO dead_letters VALUES (?, ?, ?, ?)", rows)
