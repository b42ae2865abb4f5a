"""Reading a request body: a size limit, a memory budget and a pace, enforced while it arrives.

* **Size.** A body announced larger than the limit (Content-Length) is refused before any of it
  is read (413); one sent without a length (chunked) or gzip-encoded is counted chunk by chunk
  after decoding and refused as soon as it passes the limit.
* **Memory.** The bytes of every body held at once share one budget
  (SLUICE_INGEST_BODY_BUDGET_BYTES); bodies read before their credentials are verified (a
  Segment `X-Signature` signs the body) share a smaller part of it
  (SLUICE_INGEST_UNVERIFIED_BODY_BYTES). Each chunk is reserved before it is kept; a body that
  does not fit is refused at once (503 with Retry-After, connection closed) instead of waiting,
  so memory stays bounded whatever the number of connections. The reservation is released when
  the request has been answered.
* **Pace.** A body gets SLUICE_INGEST_BODY_TIMEOUT seconds, plus one second for every
  SLUICE_INGEST_BODY_MIN_RATE bytes received; a slower one is answered 408 and its connection
  closed, so a trickling client cannot hold a reservation or a connection for long.

The budget and the pace come with the request (``BodyAllowance``, attached by the server to
every request); `read_body` without one applies the size limit alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from worker.config import Settings
from worker.ingest.errors import BadBody, TimedOut, TooLarge, Unavailable

CHUNK_BYTES = 64 * 1024
ALLOWANCE_KEY = web.RequestKey("sluice_body_allowance", object)


class BodyBudget:
    """Bytes of request bodies held at once: all of them, and those not verified yet."""

    def __init__(self, total: int, unverified: int) -> None:
        self.total = total
        self.unverified = unverified
        self.held = 0
        self.held_unverified = 0

    def reserve(self, size: int, unverified: bool) -> bool:
        """Hold `size` more bytes if they fit (False, and nothing held, if not)."""
        if self.held + size > self.total:
            return False
        if unverified and self.held_unverified + size > self.unverified:
            return False
        self.held += size
        if unverified:
            self.held_unverified += size
        return True

    def release(self, size: int, unverified: int) -> None:
        """Give back `size` bytes, `unverified` of them from the unverified part."""
        self.held -= size
        self.held_unverified -= unverified


@dataclass(slots=True)
class BodyAllowance:
    """What one request may read: the shared budget, the pace, and what it holds of the budget."""

    budget: BodyBudget
    timeout: float
    min_rate: float
    retry_after: int
    held: int = 0
    held_unverified: int = field(default=0)

    @classmethod
    def from_settings(cls, budget: BodyBudget, settings: Settings) -> BodyAllowance:
        return cls(budget, settings.ingest_body_timeout, settings.ingest_body_min_rate,
                   settings.ingest_retry_after)

    def fits(self, size: int, unverified: bool) -> bool:
        """Whether `size` more bytes would fit in the budget now (nothing is held)."""
        budget = self.budget
        return (budget.held + size <= budget.total
                and (not unverified or budget.held_unverified + size <= budget.unverified))

    def reserve(self, size: int, unverified: bool) -> None:
        """Hold `size` more bytes for this request, or raise Unavailable (503)."""
        if not self.budget.reserve(size, unverified):
            raise _no_room(self.retry_after)
        self.held += size
        if unverified:
            self.held_unverified += size

    def verified(self) -> None:
        """The request's credentials are verified: its bytes leave the unverified part."""
        self.budget.release(0, self.held_unverified)
        self.held_unverified = 0

    def release(self) -> None:
        """Give back everything this request holds (once it is answered)."""
        self.budget.release(self.held, self.held_unverified)
        self.held = self.held_unverified = 0


def _no_room(retry_after: int) -> Unavailable:
    refusal = Unavailable("the server has no room for this body now (its body budget, "
                          "SLUICE_INGEST_BODY_BUDGET_BYTES, is in use); retry later",
                          {"Retry-After": str(retry_after)})
    refusal.closes = True
    return refusal


def _too_large(size_text: str, limit: int) -> TooLarge:
    return TooLarge(f"the body is {size_text} bytes, more than the {limit} allowed "
                    "(SLUICE_INGEST_MAX_BODY_BYTES)")


def _keep(body: bytearray, chunk: bytes, limit: int, allowance: BodyAllowance | None,
          unverified: bool) -> None:
    if len(body) + len(chunk) > limit:
        raise _too_large(f"more than {limit}", limit)
    if allowance is not None:
        allowance.reserve(len(chunk), unverified)
    body += chunk


async def _read_paced(request: web.Request, body: bytearray, limit: int,
                      allowance: BodyAllowance, unverified: bool) -> None:
    """Read into `body` while the pace is kept (TimedOut when it is not)."""
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(allowance.timeout) as deadline:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                _keep(body, chunk, limit, allowance, unverified)
                deadline.reschedule(started + allowance.timeout + len(body) / allowance.min_rate)
    except TimeoutError:
        refusal = TimedOut(
            f"the body did not arrive in time ({len(body)} bytes received; a body gets "
            "SLUICE_INGEST_BODY_TIMEOUT seconds plus one per SLUICE_INGEST_BODY_MIN_RATE bytes)")
        refusal.closes = True
        raise refusal from None


def allowance_of(request: web.Request) -> BodyAllowance | None:
    """The request's body allowance, if the server attached one."""
    allowance = request.get(ALLOWANCE_KEY)
    return allowance if isinstance(allowance, BodyAllowance) else None


async def read_body(request: web.Request, limit: int, *, unverified: bool = False) -> bytes:
    """The whole body (gzip already decoded by aiohttp), or TooLarge / BadBody, and with the
    request's allowance Unavailable (no room in the budget) / TimedOut (too slow).

    `unverified`: the body is read before the request's credentials are verified.
    """
    announced = request.content_length
    if announced is not None and announced > limit:
        raise _too_large(str(announced), limit)
    allowance = allowance_of(request)
    if allowance is not None and announced is not None and not allowance.fits(announced,
                                                                              unverified):
        raise _no_room(allowance.retry_after)
    body = bytearray()
    try:
        if allowance is None or request.content.is_eof():
            # All of it is here already (a small body arrives with its headers): no pace to keep.
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                _keep(body, chunk, limit, allowance, unverified)
        else:
            await _read_paced(request, body, limit, allowance, unverified)
    except (web.RequestPayloadError, HttpProcessingError) as error:
        # e.g. a body that says gzip and is not
        reason = getattr(error, "message", None) or str(error)
        raise BadBody(f"the body cannot be read: {' '.join(str(reason).split())}") from None
    if not body:
        raise BadBody("the body is empty")
    return bytes(body)
