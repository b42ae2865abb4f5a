"""The worker's HTTP endpoints for operators: ``/metrics``, ``/health/live``, ``/health/ready``.

* ``/health/live``: 200 while the process and its event loop answer (a liveness probe);
* ``/health/ready``: 200 once the worker owns at least one source partition and every sink's
  destination answers; 503 otherwise, with a JSON body that says which check failed (while the
  worker starts or stops: ``starting`` / ``stopping``; a check that raises: ``readiness``, and
  one log line, never a 500);
* ``/metrics``: Prometheus text format (see ``worker.ops.metrics``).

It starts before the worker joins its group, so liveness answers during start-up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from worker.config import redact_urls

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


class OpsServer:
    """A small aiohttp server on its own port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 readiness: ReadinessCheck, sock: socket.socket | None = None) -> None:
        self.host = host
        self.port = port
        # Bound before the worker started (worker.ops.startup_checks.bind_web_port), or bound here.
        self.sock = sock
        self.registry = registry
        self.readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = (web.SockSite(self._runner, self.sock) if self.sock is not None
                else web.TCPSite(self._runner, self.host, self.port))
        await site.start()
        log.info("metrics and health on http://%s:%d (/metrics, /health/live, /health/ready)",
                 self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "live"})

    async def _ready(self, request: web.Request) -> web.Response:
        try:
            problems = await self.readiness()
        except Exception as error:  # noqa: BLE001 (a probe gets an answer, the log one line)
            # A check that raises is a bug of ours, not a state of the worker: 503 with what it
            # raised, one warning line; a 500 and a traceback per probe would hide the cause.
            reason = f"the readiness check failed: {type(error).__name__}: {error}"
            log.warning("%s", reason, extra={"error_class": type(error).__name__})
            problems = {"readiness": reason}
        # A reason may quote a client's error, and that a URL with its credentials.
        problems = {check: redact_urls(reason) for check, reason in problems.items()}
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return web.Response(status=200 if not problems else 503, body=orjson.dumps(body),
                            content_type="application/json")
