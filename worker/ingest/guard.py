"""What every request of `sluice ingest` goes through, whatever its path (an aiohttp middleware).

In order:

1. a request id (``X-Request-Id`` on every answer; a 500's body and log line carry it);
2. the failed-authentication limit of its client address (``rate_limits.AuthFailures``): a
   client that failed too often is answered 429 with Retry-After before anything is read;
3. a body allowance (``body.BodyAllowance``): `read_body` reserves the body's bytes from the
   shared budget and keeps the pace; released when the request is answered;
4. the path's handler. A ``Refused`` it raises becomes the answer, in the path's form (a path
   registers how its refusals look, e.g. Firehose's ``errorMessage``; ``{"error": …}``
   otherwise); a 401, 403 or unreadable credential counts against the client; any other
   exception is a 500 with the request id and one log line, never a traceback;
5. the metrics: every answer is counted by form and status.

Requests aiohttp itself cannot parse never reach a handler: ``ParserLog`` makes its answer
(400, 413, 431) one log line and a count instead of a traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from worker.config import Settings
from worker.ingest.body import ALLOWANCE_KEY, BodyAllowance, BodyBudget
from worker.ingest.client_address import TrustedProxies, client_address
from worker.ingest.errors import Refused
from worker.ingest.metrics import IngestMetrics
from worker.ingest.rate_limits import AuthFailures

log = logging.getLogger("worker.ingest")

REQUEST_ID_HEADER = "X-Request-Id"
UNROUTED = "other"  # the form label of a path no form registered (404, 405)


class Outcome:
    """What a handled request produced: for the answer and the metrics."""

    __slots__ = ("body_bytes", "events", "request_id")

    def __init__(self) -> None:
        self.body_bytes = 0
        self.events = 0
        self.request_id: str | None = None  # the sender's own id of the request (Firehose's)


OUTCOME_KEY = web.RequestKey("sluice_outcome", Outcome)
REQUEST_ID_KEY = web.RequestKey("sluice_request_id", str)

RefusalRenderer = Callable[[Refused, Outcome], dict[str, Any]]


def readable(text: str) -> str:
    """`text` with the bytes aiohttp could not decode (kept as surrogates) replaced by U+FFFD:
    such a string can be encoded, logged and sent back."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def header_text(request: web.Request, name: str) -> str | None:
    """A header that is not a credential, as readable text (None if absent)."""
    value = request.headers.get(name)
    return None if value is None else readable(value)


def json_response(status: int, body: dict, headers: dict[str, str] | None = None
                  ) -> web.Response:
    """A JSON answer."""
    return web.Response(status=status, body=orjson.dumps(body), headers=headers,
                        content_type="application/json")


def _error_body(refusal: Refused, outcome: Outcome) -> dict[str, Any]:
    return {"error": refusal.reason}


class RequestGuard:
    """The middleware every path of `sluice ingest` is behind (see the module docstring)."""

    def __init__(self, settings: Settings, metrics: IngestMetrics,
                 proxies: TrustedProxies) -> None:
        self.settings = settings
        self.metrics = metrics
        self.proxies = proxies
        self.failures = AuthFailures(settings)
        self.budget = BodyBudget(settings.ingest_body_budget_bytes,
                                 settings.ingest_unverified_body_bytes)
        self._forms: dict[str, tuple[str, RefusalRenderer]] = {}
        metrics.body_bytes_held.labels("all").set_function(lambda: self.budget.held)
        metrics.body_bytes_held.labels("unverified").set_function(
            lambda: self.budget.held_unverified)

    def register(self, path: str, form: str, render: RefusalRenderer | None = None) -> None:
        """Name `path`'s form in the metrics, and say how its refusals are written. `path` is
        as the route was added: a variable path with its variables (``/v1/{call}``)."""
        self._forms[path] = (form, render or _error_body)

    def _form_of(self, request: web.Request) -> tuple[str, RefusalRenderer]:
        # The path the request was routed by, so that a variable path is registered once.
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        return self._forms.get(path, (UNROUTED, _error_body))

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        started = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        outcome = Outcome()
        allowance = BodyAllowance.from_settings(self.budget, self.settings)
        request[REQUEST_ID_KEY], request[OUTCOME_KEY] = request_id, outcome
        request[ALLOWANCE_KEY] = allowance
        form, render = self._form_of(request)
        client = client_address(request, self.proxies)
        try:
            try:
                self.failures.check(client)
                response = await handler(request)
            except Refused as refusal:
                outcome.events = 0
                response = self._refused(request, refusal, outcome, render, client)
            except web.HTTPException as error:  # aiohttp's own 404 and 405
                response = error
            except Exception as error:  # noqa: BLE001 (one line and a 500, never a traceback)
                outcome.events = 0
                response = self._failed(request, request_id, error)
        finally:
            allowance.release()
        response.headers[REQUEST_ID_HEADER] = request_id
        self.metrics.answered(form, response.status, outcome.events, outcome.body_bytes,
                              time.monotonic() - started)
        return response

    def _refused(self, request: web.Request, refusal: Refused, outcome: Outcome,
                 render: RefusalRenderer, client: str | None) -> web.Response:
        if refusal.failed_authentication:
            self.failures.failed(client)
        refusal.reason = readable(refusal.reason)
        level = logging.DEBUG if refusal.status == 429 else logging.INFO
        log.log(level, "ingest: %s %s answered %d: %s", request.method, readable(request.path),
                refusal.status, refusal.reason)
        response = json_response(refusal.status, render(refusal, outcome), refusal.headers)
        if refusal.closes:
            response.force_close()
        return response

    @staticmethod
    def _failed(request: web.Request, request_id: str, error: Exception) -> web.Response:
        log.error("ingest: %s %s failed (request %s): %s: %s", request.method,
                  readable(request.path), request_id, type(error).__name__,
                  readable(" ".join(str(error).split())[:300]))
        log.debug("ingest: request %s failed", request_id, exc_info=error)
        response = json_response(500, {"error": f"internal error (request {request_id}); "
                                                "retry later",
                                       "requestId": request_id})
        response.force_close()
        return response


class ParserLog(logging.LoggerAdapter):
    """aiohttp's server log (its ``logger``): a request it cannot parse is one line and a count.

    aiohttp answers such a request itself (400, or 413 / 431 for an oversize line) and logs it
    with ``logger.exception``, a traceback per request: on the internet, per stray scanner.
    """

    def __init__(self, metrics: IngestMetrics) -> None:
        super().__init__(logging.getLogger("worker.ingest.http"), {})
        self.metrics = metrics

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError):
            self.metrics.answered("malformed", error.code or 400, 0, 0, 0.0)
            self.logger.info("ingest: a request that is not HTTP answered %d: %s",
                             error.code or 400, " ".join(str(error.message).split())[:200])
            return
        reason = f"{type(error).__name__}: {error}" if error else str(msg) % args
        self.logger.error("ingest: %s", " ".join(reason.split())[:300])
