"""Reading a request body with a size limit, enforced while the body arrives.

A body announced larger than the limit (Content-Length) is refused before any of it is read; a
body sent without a length (chunked) or gzip-encoded is counted chunk by chunk after decoding,
and refused as soon as it passes the limit, so memory per request stays bounded by the limit.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from worker.ingest.errors import BadBody, TooLarge

CHUNK_BYTES = 64 * 1024


def _too_large(size_text: str, limit: int) -> TooLarge:
    return TooLarge(f"the body is {size_text} bytes, more than the {limit} allowed "
                    "(SLUICE_INGEST_MAX_BODY_BYTES)")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body (gzip already decoded by aiohttp), or TooLarge / BadBody."""
    announced = request.content_length
    if announced is not None and announced > limit:
        raise _too_large(str(announced), limit)
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise _too_large(f"more than {limit}", limit)
    except (web.RequestPayloadError, HttpProcessingError) as error:
        # e.g. a body that says gzip and is not
        reason = getattr(error, "message", None) or str(error)
        raise BadBody(f"the body cannot be read: {' '.join(str(reason).split())}") from None
    if not body:
        raise BadBody("the body is empty")
    return bytes(body)
