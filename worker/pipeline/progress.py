"""A progress line for long runs: counts since start and the rate over the last interval."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Counters a worker bumps on its hot path and reports on a timer (cheap to bump)."""

    counts: Counter[str] = field(default_factory=Counter)
    _last_report_counts: Counter[str] = field(default_factory=Counter)
    _last_report_time: float = field(default_factory=time.monotonic)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def line(self) -> str:
        """`consumed=1200 (+400, 80.0/s) delivered=...` since the previous call."""
        now = time.monotonic()
        elapsed = max(now - self._last_report_time, 1e-9)
        parts = []
        for name, total in sorted(self.counts.items()):
            delta = total - self._last_report_counts[name]
            parts.append(f"{name}={total} (+{delta}, {delta / elapsed:.1f}/s)")
        self._last_report_counts = Counter(self.counts)
        self._last_report_time = now
        return " ".join(parts) if parts else "idle: nothing consumed yet"
