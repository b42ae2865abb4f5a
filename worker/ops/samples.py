"""What ``/metrics`` shows, as plain numbers: for the status page, which must agree with it.

``read_samples`` collects the same registry that ``/metrics`` renders, at the same moment, so
every number of the status page is one of the samples a scrape would return (same names, the
``_total`` suffix included, same labels). ``RateTracker`` turns counters into per-second rates
between two page renders, as Prometheus's ``rate()`` would between two scrapes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

Labels = tuple[tuple[str, str], ...]


def labels_of(**labels: str) -> Labels:
    """Labels in the order samples keep them (sorted by name)."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Samples:
    """Sample values by name, then by labels (sorted ``(name, value)`` pairs)."""

    values: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def get(self, name: str, labels: Labels = ()) -> float | None:
        """One sample's value, None if /metrics would not show it."""
        return self.values.get(name, {}).get(labels)

    def series(self, name: str) -> dict[Labels, float]:
        """Every sample of one name, by labels."""
        return self.values.get(name, {})

    def has(self, name: str) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)


def read_samples(registry: CollectorRegistry) -> Samples:
    """Collect the registry once, as a scrape of /metrics would."""
    values: dict[str, dict[Labels, float]] = {}
    for family in registry.collect():
        if family.type in ("counter", "gauge", "unknown"):
            # A family with no sample (e.g. no dead letter yet) is still known to exist.
            values.setdefault(family.name + ("_total" if family.type == "counter" else ""), {})
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return Samples(values)


# How far back a rate looks: long enough to smooth the batches in which events arrive, short
# enough that a stop shows within a few refreshes of the page.
RATE_WINDOW_SECONDS = 15.0
# Two renders closer than this give no rate (a double click would divide by almost nothing).
MIN_RATE_INTERVAL_SECONDS = 1.0


class RateTracker:
    """Per-second rates of counters, from the samples of earlier renders.

    The page is rendered whenever someone looks at it; every render adds a snapshot, and a rate
    is the change since the oldest snapshot of the last ``RATE_WINDOW_SECONDS``. Nobody looking
    means no snapshot and nothing kept.
    """

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._snapshots: deque[tuple[float, Samples]] = deque()

    def observe(self, samples: Samples, now: float | None = None) -> Rates:
        """Record this render's samples; the rates since the window's oldest snapshot."""
        now = time.monotonic() if now is None else now
        while self._snapshots and now - self._snapshots[0][0] > self.window:
            self._snapshots.popleft()
        baseline = self._snapshots[0] if self._snapshots else None
        self._snapshots.append((now, samples))
        if baseline is None or now - baseline[0] < MIN_RATE_INTERVAL_SECONDS:
            return Rates(samples, None, 0.0)
        return Rates(samples, baseline[1], now - baseline[0])


@dataclass(frozen=True)
class Rates:
    """Per-second change of counters between an earlier snapshot and now."""

    now: Samples
    before: Samples | None
    seconds: float

    def of(self, name: str, labels: Labels = ()) -> float | None:
        """The counter's rate, None when there is no earlier snapshot to compare with."""
        if self.before is None or self.seconds <= 0:
            return None
        current = self.now.get(name, labels)
        if current is None:
            return None
        earlier = self.before.get(name, labels) or 0.0
        # A counter never goes down within a process; clamp anyway (as rate() treats a reset).
        return max(current - earlier, 0.0) / self.seconds
