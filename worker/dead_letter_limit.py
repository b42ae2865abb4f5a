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

An outcome is one (event, sink) share of a record: a delivery, or a dead letter for one sink.
A record that does not decode fails every sink, so it counts once per sink: a stream that is
entirely undecodable and one that every sink rejects give the same ratio (1.0).

Once tripped, the limit stays tripped until the worker restarts: the dead letter that tripped
it, and every one after it, is **not written and not acknowledged**, so nothing at or after it
is committed; the agent waits, consumption pauses, and ``/health/ready`` reports
``dead_letters`` with the reason (also logged as an error). After fixing the producer, restart
the worker with the limit switched off (ratio 0) to dead-letter the bad stretch for a later
replay, or with it on to stop again if the records are still failing.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class DeadLetterLimit:
    """Counts outcomes over a sliding window; `tripped` holds the reason once past the limit."""

    max_ratio: float
    window: int
    max_consecutive: int = 0
    tripped: str | None = None
    # Run-length encoded outcomes, oldest first: (is_dead_letter, count); O(1) per call.
    _runs: deque[list[int]] = field(default_factory=deque)
    _total: int = 0
    _dead: int = 0
    _consecutive: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_ratio > 0 or self.max_consecutive > 0

    def delivered(self, count: int = 1) -> None:
        """`count` shares were delivered."""
        if count <= 0 or not self.enabled:
            return
        self._consecutive = 0
        self._add(0, count)

    def dead_lettered(self, count: int = 1) -> str | None:
        """`count` shares fail; returns the reason if the limit is (now) tripped."""
        if count <= 0 or not self.enabled or self.tripped:
            return self.tripped
        self._consecutive += count
        self._add(1, count)
        if self.max_consecutive and self._consecutive > self.max_consecutive:
            self._trip(f"{self._consecutive} dead letters in a row, more than "
                       f"SLUICE_DEAD_LETTER_LIMIT_CONSECUTIVE ({self.max_consecutive})")
        elif self.max_ratio and self._total >= self.window \
                and self._dead / self._total > self.max_ratio:
            self._trip(f"{self._dead} of the last {self._total} outcomes were dead letters, more "
                       f"than SLUICE_DEAD_LETTER_LIMIT_RATIO ({self.max_ratio:g}) of "
                       f"SLUICE_DEAD_LETTER_LIMIT_WINDOW")
        return self.tripped

    def _add(self, dead: int, count: int) -> None:
        if self._runs and self._runs[-1][0] == dead:
            self._runs[-1][1] += count
        else:
            self._runs.append([dead, count])
        self._total += count
        self._dead += dead * count
        while self._total > self.window:
            oldest = self._runs[0]
            drop = min(oldest[1], self._total - self.window)
            oldest[1] -= drop
            self._total -= drop
            self._dead -= oldest[0] * drop
            if not oldest[1]:
                self._runs.popleft()

    def _trip(self, why: str) -> None:
        self.tripped = (
            f"dead-letter limit reached: {why}. Consumption is paused and nothing from here on "
            "is committed or dead-lettered: look at `sluice dlq inspect` for what fails (a "
            "broken producer or mapping?), fix it, and restart the worker (with "
            "SLUICE_DEAD_LETTER_LIMIT_RATIO=0 to dead-letter the bad stretch for a replay)"
        )
        log.error("%s", self.tripped, extra={"error_class": "DeadLetterLimit"})
