"""The HTTP paths of `sluice ingest` and their answers.

* ``POST /segment``: a Segment event or batch; ``X-Signature`` or basic auth; ``{"accepted": n}``
* ``POST /firehose``: a Firehose HTTP-endpoint request; ``X-Amz-Firehose-Access-Key``;
  Firehose's ``{"requestId", "timestamp"}`` (and ``errorMessage`` on failure)
* ``POST /events``: JSON, a JSON array or NDJSON; ``Authorization: Bearer …``;
  ``{"accepted": n}``
* ``/v1/…``: Segment's tracking API, with write keys (``worker.ingest.tracking``)

200 only once the broker has acknowledged every record of the request; 400 (not the form),
401 (no credentials), 403 (wrong credentials), 413 (too large), 503 with Retry-After (the broker
did not acknowledge in time). Errors carry the reason: `{"error": "…"}`, or Firehose's
`errorMessage`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from worker.config import IngestForm, Settings
from worker.ingest import auth
from worker.ingest.body import read_body
from worker.ingest.errors import Refused
from worker.ingest.forms import (
    firehose_headers,
    firehose_records,
    json_records,
    segment_records,
)
from worker.ingest.metrics import IngestMetrics
from worker.ingest.producer import IngestProducer
from worker.ingest.tracking import add_tracking_routes

log = logging.getLogger(__name__)

PATHS = {IngestForm.SEGMENT: "/segment", IngestForm.FIREHOSE: "/firehose",
         IngestForm.JSON: "/events"}
FIREHOSE_REQUEST_ID_HEADER = "X-Amz-Firehose-Request-Id"
FIREHOSE_SOURCE_HEADER = "X-Amz-Firehose-Source-Arn"
FIREHOSE_ATTRIBUTES_HEADER = "X-Amz-Firehose-Common-Attributes"


class Outcome:
    """What a handled request produced: for the answer and the metrics."""

    __slots__ = ("body_bytes", "events", "request_id")

    def __init__(self) -> None:
        self.body_bytes = 0
        self.events = 0
        self.request_id: str | None = None


Handler = Callable[[web.Request, Outcome], Awaitable[None]]


class IngestServer:
    """An aiohttp application with one path per enabled form."""

    def __init__(self, settings: Settings, producer: IngestProducer,
                 metrics: IngestMetrics) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        """The routes: enabled forms answer, the others say how to enable them."""
        app = web.Application()
        handlers: dict[IngestForm, Handler] = {
            IngestForm.SEGMENT: self._segment, IngestForm.FIREHOSE: self._firehose,
            IngestForm.JSON: self._json,
        }
        for form, path in PATHS.items():
            if form in self.settings.ingest_forms:
                app.router.add_post(path, self._route(form, handlers[form]))
            else:
                app.router.add_post(path, self._disabled(form))
        add_tracking_routes(app, self.settings, self.producer, self.metrics)
        return app

    async def start(self) -> None:
        """Listen on SLUICE_INGEST_HOST:SLUICE_INGEST_PORT (OSError if the port is taken)."""
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=
                                     self.settings.ingest_produce_timeout + 1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.ingest_host, self.settings.ingest_port)
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
            started = time.monotonic()
            outcome = Outcome()
            try:
                await handler(request, outcome)
                response = self._accepted(form, outcome)
            except Refused as refusal:
                outcome.events = 0
                response = self._refused(form, refusal, outcome)
                log.info("ingest: %s %s answered %d: %s", request.method, request.path,
                         refusal.status, refusal.reason)
            self.metrics.answered(form.value, response.status, outcome.events,
                                  outcome.body_bytes, time.monotonic() - started)
            return response

        return handle

    def _disabled(self, form: IngestForm) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return _json_response(404, {"error": f"the `{form.value}` form is not enabled "
                                                 "(SLUICE_INGEST_FORMS)"})

        return handle

    async def _segment(self, request: web.Request, outcome: Outcome) -> None:
        if not auth.segment_presents_credentials(request):
            auth.verify_segment(self.settings, request, b"")  # raises Unauthenticated
        body = await read_body(request, self.settings.ingest_max_body_bytes)
        outcome.body_bytes = len(body)
        auth.verify_segment(self.settings, request, body)
        records = segment_records(body, self.settings.max_record_bytes)
        await self.producer.send_all(records)
        outcome.events = len(records)

    async def _firehose(self, request: web.Request, outcome: Outcome) -> None:
        outcome.request_id = request.headers.get(FIREHOSE_REQUEST_ID_HEADER)
        auth.verify_firehose(self.settings, request)
        body = await read_body(request, self.settings.ingest_max_body_bytes)
        outcome.body_bytes = len(body)
        source_arn = request.headers.get(FIREHOSE_SOURCE_HEADER)
        delivery = firehose_records(body, source_arn, self.settings.max_record_bytes,
                                    firehose_headers(source_arn, request.headers.get(
                                        FIREHOSE_ATTRIBUTES_HEADER)))
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
            return _json_response(200, {"requestId": outcome.request_id,
                                        "timestamp": _now_ms()})
        return _json_response(200, {"accepted": outcome.events})

    @staticmethod
    def _refused(form: IngestForm, refusal: Refused, outcome: Outcome) -> web.Response:
        if form is IngestForm.FIREHOSE:
            body = {"requestId": outcome.request_id or "", "timestamp": _now_ms(),
                    "errorMessage": refusal.reason}
        else:
            body = {"error": refusal.reason}
        return _json_response(refusal.status, body, refusal.headers)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json_response(status: int, body: dict, headers: dict[str, str] | None = None
                   ) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), headers=headers,
                        content_type="application/json")
