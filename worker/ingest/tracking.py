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
committed every record of the request (``worker.ingest.producer``); 400 for a body that is not
JSON or breaks a limit (the libraries drop it, as they do for Segment); 401 without a write key,
403 with one no source has; 429 with ``Retry-After`` past a write key's or a client address's
rate limit (``worker.ingest.rate_limits``: a browser write key is public); 503 with
``Retry-After`` when nothing was written (the libraries retry). Errors are ``{"success": false,
"code", "message"}``: Segment's Python library reads ``code`` and ``message``.

Every path is behind the server's guards (``worker.ingest.guard``, form ``tracking`` in the
metrics): request id, failed authentications, the body budget, one log line per error. A write
key in the basic-auth header is checked before the body is read; one in the body is known only
after, so such a body is read within the unverified part of the budget
(SLUICE_INGEST_UNVERIFIED_BODY_BYTES). Every answer to an allowed origin carries the CORS
headers, refusals included.

Each record gets the door's headers (``worker.events.ingest_headers``): when the request
arrived, the client's address, the source; the worker applies them as Segment's servers do
(``worker.events.tracking``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from worker.config import IngestForm, Settings
from worker.events import ingest_headers as names
from worker.events.normalize import format_timestamp
from worker.ingest.auth import credential_header
from worker.ingest.body import allowance_of, read_body
from worker.ingest.client_address import TrustedProxies, client_address
from worker.ingest.cors import Cors
from worker.ingest.errors import BadBody, Forbidden, Refused, TooLarge, Unauthenticated
from worker.ingest.forms import IngestRecord
from worker.ingest.guard import OUTCOME_KEY, Outcome, RequestGuard, json_response
from worker.ingest.producer import IngestProducer
from worker.ingest.project_settings import api_host, project_settings
from worker.ingest.rate_limits import RateLimits
from worker.ingest.tracking_bodies import BATCH_CALLS, CALLS, body_limit, tracking_body
from worker.ingest.write_keys import Source, WriteKeys

FORM = IngestForm.TRACKING.value
PREFIX = "/v1/"  # every path of the tracking API is under it (an Ingress routes the prefix)
CALL_PATH = PREFIX + "{call}"
SETTINGS_PATH = PREFIX + "projects/{write_key}/settings"
_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          429: "rate_limited", 503: "unavailable"}

def add_tracking_routes(app: web.Application, settings: Settings, producer: IngestProducer,
                        guard: RequestGuard, rate_limits: RateLimits) -> None:
    """Register the tracking API's paths behind `guard` (form ``tracking``): served when the
    form is enabled, else answered 404 with how to enable it."""
    for path in (CALL_PATH, SETTINGS_PATH):
        guard.register(path, FORM, _refusal_body)
    if IngestForm.TRACKING not in settings.ingest_forms:
        async def disabled(request: web.Request) -> web.Response:
            return json_response(404, {"error": "the `tracking` form is not enabled "
                                                "(SLUICE_INGEST_FORMS)"})

        for method in ("POST", "OPTIONS"):
            app.router.add_route(method, CALL_PATH, disabled)
        app.router.add_get(SETTINGS_PATH, disabled)
        return
    api = TrackingApi(settings, producer, WriteKeys(settings), guard.proxies, rate_limits)
    app.router.add_post(CALL_PATH, api.call)
    app.router.add_route("OPTIONS", CALL_PATH, api.preflight)
    app.router.add_get(SETTINGS_PATH, api.settings_document)
    app.router.add_route("OPTIONS", SETTINGS_PATH, api.preflight)
    app.on_response_prepare.append(api.cors_headers)


class TrackingApi:
    """The handlers of the tracking API's paths."""

    def __init__(self, settings: Settings, producer: IngestProducer, write_keys: WriteKeys,
                 proxies: TrustedProxies, rate_limits: RateLimits) -> None:
        self.settings = settings
        self.producer = producer
        self.write_keys = write_keys
        self.cors = Cors(settings.ingest_cors_origins)
        self.proxies = proxies
        self.rate_limits = rate_limits

    async def cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer of a tracking path to an allowed origin carries the CORS headers,
        whatever made it (a handler, a refusal, the guard's 429 or 500), so that a browser
        reads a 429's Retry-After."""
        if not request.path.startswith(PREFIX):
            return
        for name, value in self.cors.headers_for(request).items():
            response.headers.setdefault(name, value)

    async def preflight(self, request: web.Request) -> web.Response:
        return self.cors.preflight(request)

    async def settings_document(self, request: web.Request) -> web.Response:
        # Not rate-limited: no body, nothing produced, and one per page load.
        write_key = request.match_info["write_key"]
        if self.write_keys.source_of(write_key) is None:
            return json_response(404, {"error": "no source has this write key"})
        protocol, host = api_host(request, self.settings.ingest_tracking_public_url)
        return json_response(200, project_settings(write_key, protocol, host))

    async def call(self, request: web.Request) -> web.Response:
        """One ``POST /v1/<call>``: authenticate, rate-limit, read, produce, answer.

        A write key in the basic-auth header is verified and rate-limited before the body is
        read, which then counts against the body budget as verified; a write key in the body
        (analytics.js) is known only once the body is read, so the body is read within the
        unverified budget. A refusal is raised for the guard to answer and count.
        """
        received_at = format_timestamp(datetime.now(UTC))
        outcome = request[OUTCOME_KEY]
        call = request.match_info["call"]
        if call not in CALLS and call not in BATCH_CALLS:
            raise _NotFound(f"no tracking call /v1/{call}: /v1/batch, /v1/track, "
                            "/v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias")
        client = client_address(request, self.proxies)
        header_key = _basic_user(request)
        source = self._source(header_key) if header_key else None
        if header_key:
            self.rate_limits.check(header_key, client)
        try:
            body = await read_body(request, body_limit(self.settings, call),
                                   unverified=source is None)
        except TooLarge as error:  # Segment answers 400 to an over-size body
            raise BadBody(error.reason.replace("SLUICE_INGEST_MAX_BODY_BYTES",
                          _limit_setting(call))) from None
        outcome.body_bytes = len(body)
        parsed = tracking_body(body, call, self.settings)
        if source is None:
            if not parsed.write_key:
                raise Unauthenticated(
                    "no write key: send it as the basic-auth user name (`<write key>:`) or "
                    "as `writeKey` in the body", {"WWW-Authenticate": 'Basic realm="sluice"'})
            source = self._source(parsed.write_key)
            allowance = allowance_of(request)
            if allowance is not None:
                allowance.verified()
            self.rate_limits.check(parsed.write_key, client)
        records = self._stamped(parsed.records, received_at, client, source)
        await self.producer.send_all(records)
        outcome.events = len(records)
        return json_response(200, {"success": True})

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
    scheme, _, value = (credential_header(request, "Authorization") or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, ValueError):
        raise Forbidden("the basic-auth credentials are not valid base64") from None
    return user or None


def _refusal_body(refusal: Refused, outcome: Outcome) -> dict[str, Any]:
    """A refusal as Segment's libraries read it (the Python library reads `code` and
    `message`)."""
    return {"success": False, "code": _CODES.get(refusal.status, "error"),
            "message": refusal.reason}
