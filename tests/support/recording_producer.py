"""A stand-in for `sluice ingest`'s producer that keeps what a request would have produced."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from worker.ingest.errors import Unavailable
from worker.ingest.forms import IngestRecord


class RecordingProducer:
    """Keeps what requests would have produced; `down` refuses like a lost broker, `error`
    raises it from inside the handler, `hold` keeps every request waiting until it is set."""

    def __init__(self) -> None:
        self.sent: list[IngestRecord] = []
        self.down = False
        self.available = True
        self.error: Exception | None = None
        self.hold: asyncio.Event | None = None

    async def send_all(self, records: Sequence[IngestRecord]) -> None:
        if self.error is not None:
            raise self.error
        if self.down:
            raise Unavailable("the broker is unavailable", {"Retry-After": "5"})
        if self.hold is not None:
            await self.hold.wait()
        self.sent.extend(records)
