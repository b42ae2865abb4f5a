"""Segment's tracking API on `sluice ingest`: Segment's own libraries and analytics.js send here.

Paths (``SLUICE_INGEST_FORMS`` must name ``tracking``):

* ``POST /v1/batch`` (also ``/v1/import``, and analytics.js's ``/v1/b``): a batch;
* ``POST /v1/track``, ``/identify``, ``/page``, ``/screen``, ``/group``, ``/alias`` and the short
  names analytics.js posts to (``/v1/t``, ``/i``, ``/p``, ``/s``, ``/g``, ``/a``): one call;
* ``GET /v1/projects/<write key>/settings``: the settings analytics.js loads
  (``worker.ingest.project_settings``);
* ``OPTIONS`` on each: CORS preflight (``worker.ingest.cors``).

Credentials as Segment documents them: the write key as the basic-auth user name (the password
empty, or anything: Segment ignores it), or ``writeKey`` in the body (what analytics.js sends,
with ``Content-Type: text/plain`` so the body needs no preflight of its own). A write key names
a source (``worker.ingest.write_keys``) whose id every document carries.

Answers, as Segment's libraries read them: 200 ``{"success": true}`` only once the broker has
acknowledged every record (``acks=all``); 400 for a body that is not JSON or breaks a limit
(the libraries drop it, as they do for Segment); 401 without a write key, 403 with one no
source has; 503 with ``Retry-After`` while the broker does not acknowledge (the libraries
retry). Errors are ``{"success": false, "code", "message"}``: Segment's Python library reads
``code`` and ``message``.

Each record gets the door's headers (``worker.events.ingest_headers``): when the request
arrived, the client's address, the source; the worker applies them as Segment's servers do
(``worker.events.tracking``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from worker.config import IngestForm, Settings
from worker.events import ingest_headers as names
from worker.events.normalize import format_timestamp
from worker.ingest.body import read_body
from worker.ingest.client_address import TrustedProxies, client_address
from worker.ingest.cors import Cors
from worker.ingest.errors import BadBody, Forbidden, Refused, TooLarge, Unauthenticated
from worker.ingest.forms import IngestRecord
from worker.ingest.metrics import IngestMetrics
from worker.ingest.producer import IngestProducer
from worker.ingest.project_settings import api_host, project_settings
from worker.ingest.tracking_bodies import BATCH_CALLS, CALLS, body_limit, tracking_body
from worker.ingest.write_keys import Source, WriteKeys

log = logging.getLogger(__name__)

FORM = IngestForm.TRACKING.value
PREFIX = "/v1/"  # every path of the tracking API is under it (an Ingress routes the prefix)
CALL_PATH = PREFIX + "{call}"
SETTINGS_PATH = PREFIX + "projects/{write_key}/settings"
_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          429: "rate_limited", 503: "unavailable"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_tracking_routes(app: web.Application, settings: Settings, producer: IngestProducer,
                        metrics: IngestMetrics) -> None:
    """Register the tracking API's paths: served when the form is enabled, else answered 404
    with how to enable it."""
    if IngestForm.TRACKING not in settings.ingest_forms:
        async def disabled(request: web.Request) -> web.Response:
            return web.json_response({"error": "the `tracking` form is not enabled "
                                               "(SLUICE_INGEST_FORMS)"}, status=404)

        for method in ("POST", "OPTIONS"):
            app.router.add_route(method, CALL_PATH, disabled)
        app.router.add_get(SETTINGS_PATH, disabled)
        return
    api = TrackingApi(settings, producer, metrics, WriteKeys(settings))
    app.router.add_post(CALL_PATH, api.call)
    app.router.add_route("OPTIONS", CALL_PATH, api.preflight)
    app.router.add_get(SETTINGS_PATH, api.settings_document)
    app.router.add_route("OPTIONS", SETTINGS_PATH, api.preflight)


class TrackingApi:
    """The handlers of the tracking API's paths."""

    def __init__(self, settings: Settings, producer: IngestProducer, metrics: IngestMetrics,
                 write_keys: WriteKeys) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.write_keys = write_keys
        self.cors = Cors(settings.ingest_cors_origins)
        self.proxies = TrustedProxies(settings.ingest_trusted_proxies)

    async def preflight(self, request: web.Request) -> web.Response:
        return self.cors.preflight(request)

    async def settings_document(self, request: web.Request) -> web.Response:
        cors = self.cors.headers_for(request)
        write_key = request.match_info["write_key"]
        if self.write_keys.source_of(write_key) is None:
            return _answer(404, {"error": "no source has this write key"}, cors)
        protocol, host = api_host(request, self.settings.ingest_tracking_public_url)
        return _answer(200, project_settings(write_key, protocol, host), cors)

    async def call(self, request: web.Request) -> web.Response:
        """One ``POST /v1/<call>``: read, authenticate, produce, answer; counted by status."""
        started = time.monotonic()
        received_at = format_timestamp(datetime.now(UTC))
        cors = self.cors.headers_for(request)
        events = body_bytes = 0
        try:
            call = request.match_info["call"]
            if call not in CALLS and call not in BATCH_CALLS:
                raise _NotFound(f"no tracking call /v1/{call}: /v1/batch, /v1/track, "
                                "/v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias")
            header_key = _basic_user(request)
            source = self._source(header_key) if header_key else None
            try:
                body = await read_body(request, body_limit(self.settings, call))
            except TooLarge as error:  # Segment answers 400 to an over-size body
                raise BadBody(error.reason.replace("SLUICE_INGEST_MAX_BODY_BYTES",
                              _limit_setting(call))) from None
            body_bytes = len(body)
            parsed = tracking_body(body, call, self.settings)
            if source is None:
                if not parsed.write_key:
                    raise Unauthenticated(
                        "no write key: send it as the basic-auth user name (`<write key>:`) or "
                        "as `writeKey` in the body", {"WWW-Authenticate": 'Basic realm="sluice"'})
                source = self._source(parsed.write_key)
            # TODO(rate limits): a browser write key is public; limit it here, per write key
            # and per client address, with `RateLimits.check(write_key, client)` (429 and
            # Retry-After) once worker/ingest/rate_limits.py exists.
            client = client_address(request, self.proxies)
            records = self._stamped(parsed.records, received_at, client, source)
            await self.producer.send_all(records)
            events = len(records)
            response = _answer(200, {"success": True}, cors)
        except Refused as refusal:
            log.info("ingest: %s %s answered %d: %s", request.method, request.path,
                     refusal.status, refusal.reason)
            response = _answer(refusal.status,
                               {"success": False, "code": _CODES.get(refusal.status, "error"),
                                "message": refusal.reason}, {**refusal.headers, **cors})
            events = 0
        self.metrics.answered(FORM, response.status, events, body_bytes,
                              time.monotonic() - started)
        return response

    def _source(self, write_key: str) -> Source:
        source = self.write_keys.source_of(write_key)
        if source is None:
            raise Forbidden("this write key names no source (SLUICE_INGEST_WRITE_KEYS, "
                            "SLUICE_INGEST_WRITE_KEYS_FILE)")
        return source

    @staticmethod
    def _stamped(records: list[IngestRecord], received_at: str, client: str | None,
                 source: Source) -> list[IngestRecord]:
        """The records with the door's headers (``worker.events.ingest_headers``)."""
        door = [(names.RECEIVED_AT, received_at.encode()),
                (names.SOURCE_ID, source.source_id.encode())]
        if source.name:
            door.append((names.SOURCE_NAME, source.name.encode()))
        if client:
            door.append((names.CLIENT_IP, client.encode()))
        return [replace(record, headers=record.headers + tuple(door)) for record in records]


class _NotFound(Refused):
    status = 404


def _limit_setting(call: str) -> str:
    return ("SLUICE_INGEST_TRACKING_MAX_BATCH_BYTES" if call in BATCH_CALLS
            else "SLUICE_INGEST_TRACKING_MAX_EVENT_BYTES")


def _basic_user(request: web.Request) -> str | None:
    """The basic-auth user name (the write key); the password is not looked at."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, ValueError):
        raise Forbidden("the basic-auth credentials are not valid base64") from None
    return user or None


def _answer(status: int, body: dict, headers: dict[str, str]) -> web.Response:
    return web.json_response(body, status=status, headers=headers or None)
