"""The HTTP paths of `sluice ingest` and their answers.

* ``POST /segment``: a Segment event or batch; ``X-Signature`` or basic auth; ``{"accepted": n}``
* ``POST /firehose``: a Firehose HTTP-endpoint request; ``X-Amz-Firehose-Access-Key``;
  Firehose's ``{"requestId", "timestamp"}`` (and ``errorMessage`` on failure)
* ``POST /events``: JSON, a JSON array or NDJSON; ``Authorization: Bearer …``;
  ``{"accepted": n}``
* ``/v1/…``: Segment's tracking API, with write keys (``worker.ingest.tracking``)

200 only once the broker has committed every record of the request; 400 (not the form, or an
unreadable header), 401 (no credentials), 403 (wrong credentials), 408 (too slow), 413 (too
large), 429 (too many failed authentications, or a write key's rate limit), 503 with
Retry-After (nothing was written: the broker did not acknowledge in time, or no room for the
body now), 504 (the broker did not confirm the commit). Errors carry the reason:
`{"error": "…"}`, Firehose's `errorMessage`, or the tracking API's Segment-shaped error.

Every path is registered in ``IngestServer.application()`` and sits behind the same guards:
``worker.ingest.connections`` (connections, header deadline and size) and
``worker.ingest.guard`` (request id, failed authentications, body budget, errors, metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from worker.config import IngestForm, Settings
from worker.ingest import auth
from worker.ingest.body import allowance_of, read_body
from worker.ingest.client_address import TrustedProxies
from worker.ingest.connections import ConnectionGuard
from worker.ingest.errors import Refused
from worker.ingest.forms import (
    firehose_headers,
    firehose_records,
    json_records,
    segment_records,
)
from worker.ingest.guard import (
    OUTCOME_KEY,
    Outcome,
    ParserLog,
    RequestGuard,
    header_text,
    json_response,
)
from worker.ingest.metrics import IngestMetrics
from worker.ingest.producer import IngestProducer
from worker.ingest.rate_limits import RateLimits
from worker.ingest.tracking import add_tracking_routes

log = logging.getLogger(__name__)

PATHS = {IngestForm.SEGMENT: "/segment", IngestForm.FIREHOSE: "/firehose",
         IngestForm.JSON: "/events"}
FIREHOSE_REQUEST_ID_HEADER = "X-Amz-Firehose-Request-Id"
FIREHOSE_SOURCE_HEADER = "X-Amz-Firehose-Source-Arn"
FIREHOSE_ATTRIBUTES_HEADER = "X-Amz-Firehose-Common-Attributes"
# Seconds aiohttp reads (and drops) the rest of a body after an answer that did not need it,
# so the client reads the answer instead of a reset; then the connection is closed.
LINGER_SECONDS = 2.0
BACKLOG = 1024

Handler = Callable[[web.Request, Outcome], Awaitable[None]]


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are wrapped by the connection guard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: ConnectionGuard) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # the runner was set up
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.factory(server), self._host,
                                                self._port, backlog=self._backlog,
                                                reuse_address=True)


class IngestServer:
    """An aiohttp application with one path per enabled form, behind the guards."""

    def __init__(self, settings: Settings, producer: IngestProducer,
                 metrics: IngestMetrics) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.proxies = TrustedProxies(settings.ingest_trusted_proxies)
        self.guard = RequestGuard(settings, metrics, self.proxies)
        self.connections = ConnectionGuard(settings, metrics)
        # For paths whose credential is public (browser write keys): `rate_limits.check`.
        self.rate_limits = RateLimits(settings)
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        """The routes: enabled forms answer, the others say how to enable them."""
        app = web.Application(middlewares=[self.guard.middleware])
        handlers: dict[IngestForm, Handler] = {
            IngestForm.SEGMENT: self._segment, IngestForm.FIREHOSE: self._firehose,
            IngestForm.JSON: self._json,
        }
        for form, path in PATHS.items():
            render = _firehose_refusal if form is IngestForm.FIREHOSE else None
            self.guard.register(path, form.value, render)
            if form in self.settings.ingest_forms:
                app.router.add_post(path, self._route(form, handlers[form]))
            else:
                app.router.add_post(path, self._disabled(form))
        add_tracking_routes(app, self.settings, self.producer, self.guard, self.rate_limits)
        return app

    async def start(self) -> None:
        """Listen on SLUICE_INGEST_HOST:SLUICE_INGEST_PORT (OSError if the port is taken)."""
        self._runner = web.AppRunner(
            self.application(), access_log=None, logger=ParserLog(self.metrics),
            shutdown_timeout=self.settings.ingest_produce_timeout + 1,
            keepalive_timeout=self.settings.ingest_keepalive_timeout,
            lingering_time=LINGER_SECONDS)
        await self._runner.setup()
        site = GuardedSite(self._runner, self.settings.ingest_host, self.settings.ingest_port,
                           self.connections)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        log.info("ingest on http://%s:%d (%s)", self.settings.ingest_host,
                 self.settings.ingest_port,
                 ", ".join(f"{PATHS.get(form, '/v1/…')}: {form.value}"
                           for form in self.settings.ingest_forms))

    async def stop(self) -> None:
        """Stop listening; requests in flight get their answers first."""
        if self._runner:
            await self._runner.cleanup()

    def _route(self, form: IngestForm, handler: Handler
               ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            outcome = request[OUTCOME_KEY]
            await handler(request, outcome)
            return self._accepted(form, outcome)

        return handle

    def _disabled(self, form: IngestForm) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return json_response(404, {"error": f"the `{form.value}` form is not enabled "
                                                "(SLUICE_INGEST_FORMS)"})

        return handle

    async def _segment(self, request: web.Request, outcome: Outcome) -> None:
        limit = self.settings.ingest_max_body_bytes
        if auth.segment_signature_presented(self.settings, request):
            # A signature signs the body: the body is read before the request is verified.
            body = await read_body(request, limit, unverified=True)
            auth.verify_segment(self.settings, request, body)
            allowance = allowance_of(request)
            if allowance is not None:
                allowance.verified()
        else:
            auth.verify_segment(self.settings, request, b"")  # basic auth, or none: 401 / 403
            body = await read_body(request, limit)
        outcome.body_bytes = len(body)
        records = segment_records(body, self.settings.max_record_bytes)
        await self.producer.send_all(records)
        outcome.events = len(records)

    async def _firehose(self, request: web.Request, outcome: Outcome) -> None:
        outcome.request_id = header_text(request, FIREHOSE_REQUEST_ID_HEADER)
        auth.verify_firehose(self.settings, request)
        body = await read_body(request, self.settings.ingest_max_body_bytes)
        outcome.body_bytes = len(body)
        source_arn = header_text(request, FIREHOSE_SOURCE_HEADER)
        delivery = firehose_records(body, source_arn, self.settings.max_record_bytes,
                                    firehose_headers(source_arn, header_text(
                                        request, FIREHOSE_ATTRIBUTES_HEADER)))
        outcome.request_id = delivery.request_id
        await self.producer.send_all(delivery.records)
        outcome.events = len(delivery.records)

    async def _json(self, request: web.Request, outcome: Outcome) -> None:
        auth.verify_bearer(self.settings, request)
        body = await read_body(request, self.settings.ingest_max_body_bytes)
        outcome.body_bytes = len(body)
        records = json_records(body, self.settings.max_record_bytes)
        await self.producer.send_all(records)
        outcome.events = len(records)

    @staticmethod
    def _accepted(form: IngestForm, outcome: Outcome) -> web.Response:
        if form is IngestForm.FIREHOSE:
            return json_response(200, {"requestId": outcome.request_id,
                                       "timestamp": _now_ms()})
        return json_response(200, {"accepted": outcome.events})


def _firehose_refusal(refusal: Refused, outcome: Outcome) -> dict[str, Any]:
    return {"requestId": outcome.request_id or "", "timestamp": _now_ms(),
            "errorMessage": refusal.reason}


def _now_ms() -> int:
    return int(time.time() * 1000)
