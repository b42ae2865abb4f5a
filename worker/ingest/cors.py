"""CORS for the tracking API: which web pages a browser lets send events to `sluice ingest`.

analytics.js posts from the page's origin to another (Sluice's), with an ``Authorization`` header
and ``Content-Type: text/plain``, so the browser first sends a preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-*``). An origin in SLUICE_INGEST_CORS_ORIGINS (or any, with
``*``) gets 204 and the ``Access-Control-Allow-*`` headers; another gets 403 without them, and the
browser then never sends the request. Every answer to an allowed origin (errors included, so
that analytics.js reads a 429's ``Retry-After``) carries ``Access-Control-Allow-Origin``.

The origin is echoed rather than ``*`` (with ``Vary: Origin``), so that a page using
``credentials: "include"`` works too; no cookie is ever read. CORS is the browser's rule, not
access control: a client that is not a browser ignores it, and a write key is public in every
page that uses it (rate limits are what bound a public key).
"""

from __future__ import annotations

from aiohttp import web

ALLOWED_METHODS = "POST, GET, OPTIONS"
# Headers analytics.js and Segment's other browser libraries send; any other a preflight asks for
# is allowed as well (echoed), since the server reads none it does not know.
DEFAULT_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
MAX_AGE = "7200"  # Chromium's upper bound: it caches a preflight at most two hours


class Cors:
    """The allowed origins (SLUICE_INGEST_CORS_ORIGINS)."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origin.lower() for origin in origins)

    def allows(self, origin: str) -> bool:
        return self.any or origin.lower().rstrip("/") in self.origins

    def headers_for(self, request: web.Request) -> dict[str, str]:
        """The headers of an answer to `request`: none for a request without an allowed
        ``Origin`` (not from a browser, or from a page not allowed)."""
        origin = request.headers.get("Origin")
        if not origin or not self.allows(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": "Retry-After"}

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an ``OPTIONS`` request."""
        origin = request.headers.get("Origin")
        if not origin:
            return web.Response(status=204, headers={"Allow": ALLOWED_METHODS})
        if not self.allows(origin):
            return web.json_response(
                {"error": f"origin {origin} may not send events here "
                          "(SLUICE_INGEST_CORS_ORIGINS)"}, status=403, headers={"Vary": "Origin"})
        requested = request.headers.get("Access-Control-Request-Headers", "").strip()
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": requested or DEFAULT_HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
            "Vary": "Origin",
        })
