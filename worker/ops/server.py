"""The worker's HTTP endpoints for operators: ``/metrics``, ``/health/live``, ``/health/ready``.

* ``/health/live``: 200 while the process and its event loop answer (a liveness probe);
* ``/health/ready``: 200 once the worker owns at least one source partition and every sink's
  destination answers; 503 otherwise, with a JSON body that says which check failed
  (``problems``). Either way the body names what an operator should act on that does not make
  the worker unready (``notices``: e.g. an S3 hourly merge that is parked);
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

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
Notices = Callable[[], dict[str, str]]


class OpsServer:
    """A small aiohttp server on its own port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 readiness: ReadinessCheck, sock: socket.socket | None = None,
                 notices: Notices | None = None) -> None:
        self.host = host
        self.port = port
        # Bound before the worker started (worker.ops.startup_checks.bind_web_port), or bound here.
        self.sock = sock
        self.registry = registry
        self.readiness = readiness
        self.notices = notices
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
        problems = await self.readiness()
        body = {"status": "ready" if not problems else "not ready", "problems": problems,
                "notices": self.notices() if self.notices else {}}
        return web.Response(status=200 if not problems else 503, body=orjson.dumps(body),
                            content_type="application/json")
