"""A stand-in for `sluice ingest`'s producer that keeps what a request would have produced."""

from __future__ import annotations

from worker.ingest.errors import Unavailable
from worker.ingest.forms import IngestRecord


class RecordingProducer:
    """Keeps what a request would have produced; `down` makes it refuse like a lost broker."""

    def __init__(self) -> None:
        self.sent: list[IngestRecord] = []
        self.down = False
        self.available = True

    async def send_all(self, records: list[IngestRecord]) -> None:
        if self.down:
            raise Unavailable("the broker is unavailable", {"Retry-After": "5"})
        self.sent.extend(records)
