"""The HTTP endpoints for operators: ``/``, ``/metrics``, ``/health/live``, ``/health/ready``.

* ``/``: the status page (``worker.ops.status_page``), refreshing itself, when the process has one;
* ``/health/live``: 200 while the process and its event loop answer (a liveness probe);
* ``/health/ready``: 200 once the worker owns at least one source partition and every sink's
  destination answers; 503 otherwise, with a JSON body that says which check failed (while the
  worker starts or stops: ``starting`` / ``stopping``; a check that raises: ``readiness``, and
  one log line, never a 500). Either way the body names what an operator should act on that
  does not make the worker unready (``notices``: e.g. an S3 hourly merge that is parked);
* ``/metrics``: Prometheus text format (see ``worker.ops.metrics``), with the readiness of the
  moment as ``sluice_ready`` and ``sluice_readiness_problem{check}``: alert rules cannot read
  ``/health/ready``, so every scrape runs the same checks a probe would.

Listens on SLUICE_WEB_HOST:SLUICE_WEB_PORT. It starts before the worker joins its group, so
liveness answers during start-up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from worker.config import redact_urls
from worker.ops.status_page import CONTENT_SECURITY_POLICY, StatusPage

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
Notices = Callable[[], dict[str, str]]

# Below a scrape's usual timeout (10 s), above a healthy check's round trips.
READINESS_TIMEOUT_SECONDS = 5.0


class ReadinessMetrics(Collector):
    """The last readiness checked, as metrics: 1/0, and one series per failing check."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {"startup": "not checked yet"}

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sluice_ready", "1 when /health/ready answers 200, else 0.",
                                value=0 if self.problems else 1)
        failing = GaugeMetricFamily(
            "sluice_readiness_problem",
            "1 for each readiness check that fails now (its reason is on /health/ready).",
            labels=["check"])
        for check in sorted(self.problems):
            failing.add_metric([check], 1)
        yield failing


class OpsServer:
    """A small aiohttp server on its own port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 readiness: ReadinessCheck, sock: socket.socket | None = None,
                 page: StatusPage | None = None, notices: Notices | None = None) -> None:
        self.host = host
        self.port = port
        # Bound before the worker started (worker.ops.startup_checks.bind_web_port), or bound here.
        self.sock = sock
        self.registry = registry
        self.readiness = readiness
        self.page = page
        self.readiness_timeout = READINESS_TIMEOUT_SECONDS
        self.readiness_metrics = ReadinessMetrics()
        registry.register(self.readiness_metrics)
        self.notices = notices
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        """The routes (the status page only for a process that has one)."""
        app = web.Application()
        if self.page is not None:
            app.router.add_get("/", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = (web.SockSite(self._runner, self.sock) if self.sock is not None
                else web.TCPSite(self._runner, self.host, self.port))
        await site.start()
        log.info("status, metrics and health on http://%s:%d (/, /metrics, /health/live, "
                 "/health/ready)", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def check(self) -> dict[str, str]:
        """Run the readiness checks; what they found is also what /metrics reports.

        Bounded: a destination that never answers (a black-holed address) must not hold up
        /metrics or the status page, which are most needed then; a check that raises is a
        problem named ``readiness`` and one warning line, not a 500."""
        try:
            problems = await asyncio.wait_for(self.readiness(), self.readiness_timeout)
        except TimeoutError:
            problems = {"readiness": f"the readiness checks did not answer within "
                                     f"{self.readiness_timeout:g}s (a destination that does "
                                     "not answer?)"}
        except Exception as error:  # noqa: BLE001 (a probe gets an answer, the log one line)
            reason = f"the readiness check failed: {type(error).__name__}: {error}"
            log.warning("%s", reason, extra={"error_class": type(error).__name__})
            problems = {"readiness": reason}
        # A reason may quote a client's error, and that a URL with its credentials.
        problems = {check: redact_urls(reason) for check, reason in problems.items()}
        self.readiness_metrics.problems = problems
        return problems

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.check()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        assert self.page is not None
        problems = await self.check()
        fragment = request.query.get("fragment") == "1"
        return web.Response(
            text=self.page.render(self.registry, problems, fragment=fragment),
            content_type="text/html", charset="utf-8",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "live"})

    async def _ready(self, request: web.Request) -> web.Response:
        problems = await self.check()
        notices = self.notices() if self.notices else {}
        body = {"status": "ready" if not problems else "not ready", "problems": problems,
                "notices": {name: redact_urls(text) for name, text in notices.items()}}
        return web.Response(status=200 if not problems else 503, body=orjson.dumps(body),
                            content_type="application/json")
