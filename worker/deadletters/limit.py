"""A safety limit on dead letters: when most of the traffic fails, stop instead of emptying it
into the dead-letter topic.

A producer deploy that breaks the format (or a mapping change that every document now
conflicts with) makes every record fail. Dead-lettering them all is "working as designed", but
it quietly moves the live stream into the dead-letter topic, where nobody looks until a
dashboard is empty. Like Sentry's arroyo (``DlqLimit``: a maximum invalid ratio and a maximum
count of consecutive invalid messages), Sluice counts outcomes and stops past a limit:

* **ratio**: more than SLUICE_DEAD_LETTER_LIMIT_RATIO of the last SLUICE_DEAD_LETTER_LIMIT_WINDOW
  outcomes were dead letters (judged only once the window is full, so a handful of bad records
  at start-up cannot trip it);
* **consecutive** (off by default): more than SLUICE_DEAD_LETTER_LIMIT_CONSECUTIVE dead letters
  in a row.

Decoding and the sinks are judged apart, each over its own window, so that both sides of a
ratio arrive at the same time: at decode, an outcome is an event decoded or a record (or batch
element) that failed to decode; at the sinks, an event delivered to one sink or dead-lettered
by it (the S3 sink reports both only when a part is uploaded, minutes later). A broken producer
trips the first, a mapping that rejects everything the second.

Once tripped, the limit stays tripped until the worker restarts: the dead letter that tripped
it, and every one after it, is **not written and not acknowledged**, so nothing at or after it
is committed; consumption pauses at once, whichever stage tripped it (the agent waits at the
dead letter it holds, or, when a sink tripped it off the agent's path, before the next batch:
``worker.pipeline.wiring``), and ``/health/ready`` reports ``dead_letters`` with the reason
(also logged as an error). After fixing the producer, restart
the worker with the limit switched off (ratio 0) to dead-letter the bad stretch for a later
replay, or with it on to stop again if the records are still failing.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class _Window:
    """The last `size` outcomes, run-length encoded (O(1) per call), and how many were bad."""

    size: int
    runs: deque[list[int]] = field(default_factory=deque)
    total: int = 0
    bad: int = 0

    def add(self, bad: int, count: int) -> None:
        if self.runs and self.runs[-1][0] == bad:
            self.runs[-1][1] += count
        else:
            self.runs.append([bad, count])
        self.total += count
        self.bad += bad * count
        while self.total > self.size:
            oldest = self.runs[0]
            drop = min(oldest[1], self.total - self.size)
            oldest[1] -= drop
            self.total -= drop
            self.bad -= oldest[0] * drop
            if not oldest[1]:
                self.runs.popleft()


@dataclass
class DeadLetterLimit:
    """Counts outcomes over sliding windows; `tripped` holds the reason once past the limit."""

    max_ratio: float
    window: int
    max_consecutive: int = 0
    tripped: str | None = None
    _windows: dict[str, _Window] = field(default_factory=dict)
    _consecutive: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_ratio > 0 or self.max_consecutive > 0

    def decoded(self, count: int = 1) -> None:
        """`count` events were decoded."""
        self._good("decode", count)

    def delivered(self, count: int = 1) -> None:
        """`count` events were delivered to a sink."""
        self._good("sinks", count)

    def dead_lettered(self, stage: str, count: int = 1) -> str | None:
        """`count` events (or records) failed at `stage` (``decode`` or a sink's name); returns
        the reason if the limit is (now) tripped."""
        if count <= 0 or not self.enabled or self.tripped:
            return self.tripped
        self._consecutive += count
        window = self._window("decode" if stage == "decode" else "sinks")
        window.add(1, count)
        if self.max_consecutive and self._consecutive > self.max_consecutive:
            self._trip(f"{self._consecutive} dead letters in a row, more than "
                       f"SLUICE_DEAD_LETTER_LIMIT_CONSECUTIVE ({self.max_consecutive})")
        elif self.max_ratio and window.total >= self.window \
                and window.bad / window.total > self.max_ratio:
            where = "failed to decode" if stage == "decode" else "were refused by a sink"
            self._trip(f"{window.bad} of the last {window.total} events {where}, more than "
                       f"SLUICE_DEAD_LETTER_LIMIT_RATIO ({self.max_ratio:g}) of "
                       f"SLUICE_DEAD_LETTER_LIMIT_WINDOW")
        return self.tripped

    def _good(self, kind: str, count: int) -> None:
        if count <= 0 or not self.enabled:
            return
        self._consecutive = 0
        self._window(kind).add(0, count)

    def _window(self, kind: str) -> _Window:
        window = self._windows.get(kind)
        if window is None:
            window = self._windows[kind] = _Window(self.window)
        return window

    def _trip(self, why: str) -> None:
        self.tripped = (
            f"dead-letter limit reached: {why}. Consumption is paused and nothing from here on "
            "is committed or dead-lettered: look at `sluice dlq inspect` for what fails (a "
            "broken producer or mapping?), fix it, and restart the worker (with "
            "SLUICE_DEAD_LETTER_LIMIT_RATIO=0 to dead-letter the bad stretch for a replay)"
        )
        log.error("%s", self.tripped, extra={"error_class": "DeadLetterLimit"})
