"""A real `IngestServer` listening on loopback with a stand-in producer, and a raw HTTP client
that can send what aiohttp's client would refuse to (undecodable headers, half a request)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.support.processes import free_port
from tests.support.recording_producer import RecordingProducer
from worker.config import Settings, load_settings
from worker.ingest.metrics import IngestMetrics
from worker.ingest.server import IngestServer

SECRET, ACCESS_KEY, TOKEN = "segment-secret", "firehose-key", "bearer-token"


def guard_settings(**overrides: object) -> Settings:
    """Settings for a server on a free loopback port, every form with credentials."""
    values: dict[str, object] = {
        "ingest_host": "127.0.0.1", "ingest_port": free_port(),
        "ingest_segment_shared_secret": SECRET, "ingest_firehose_access_key": ACCESS_KEY,
        "ingest_bearer_tokens": [TOKEN], "ingest_max_body_bytes": 4096,
        "ingest_unverified_body_bytes": 4096, "ingest_body_budget_bytes": 8192}
    return load_settings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: Settings, producer: RecordingProducer | None = None
                  ) -> AsyncIterator[IngestServer]:
    """`IngestServer.start()` on the settings' port; stopped on the way out."""
    server = IngestServer(settings, producer or RecordingProducer(),  # type: ignore[arg-type]
                          IngestMetrics(lambda: True))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class RawClient:
    """One TCP connection to the server, written and read byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer: status, headers (lower-case names), body (by Content-Length)."""
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self) -> bool:
        """Whether the server closed the connection (reads until end of stream or a reset)."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: bytes, headers: dict[str, str] | None = None,
         raw_headers: bytes = b"") -> bytes:
    """A complete POST as bytes; `raw_headers` are appended as they are (CRLF-terminated)."""
    lines = [f"POST {path} HTTP/1.1", "Host: sluice", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n").encode() + raw_headers + b"\r\n" + body


def metric(server: IngestServer, name: str, **labels: str) -> float:
    """The value of one sample of the server's metrics (0.0 if absent)."""
    value = server.metrics.registry.get_sample_value(name, labels)
    return value or 0.0
