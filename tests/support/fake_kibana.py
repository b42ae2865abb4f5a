"""A small fake Kibana: records the requests sent to it and answers as told (a thread)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import orjson


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def parts(self) -> list[Message]:
        """The multipart/form-data parts of the body."""
        head = f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        return list(message.iter_parts()) if message.is_multipart() else []


@dataclass
class FakeKibana:
    """Answers every request with `status` and `answer` (JSON); keeps what it received."""

    status: int = 200
    answer: dict = field(default_factory=lambda: {"success": True, "successCount": 2})
    received: list[Received] = field(default_factory=list)

    def __enter__(self) -> FakeKibana:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                url = urlparse(self.path)
                fake.received.append(Received(
                    "POST", url.path, parse_qs(url.query),
                    {key.lower(): value for key, value in self.headers.items()},
                    self.rfile.read(length)))
                body = orjson.dumps(fake.answer)
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
