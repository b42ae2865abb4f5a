"""``GET /v1/projects/<write key>/settings``: what analytics.js loads before it sends anything.

analytics.js (@segment/analytics-next) fetches ``<cdnURL>/v1/projects/<write key>/settings``
when it loads; pointed at Sluice (``AnalyticsBrowser.load({writeKey, cdnURL:
"https://collect.example.com"})``), it gets this document, whose ``Segment.io`` integration sends
every event back to Sluice (``apiHost`` ``<host>/v1``, ``protocol``): no other option is
needed in the page, and nothing is fetched from Segment's CDN.

The document enables only the ``Segment.io`` destination (no device-mode destinations, which
would load scripts from Segment's CDN), with no tracking plan, no middleware, and analytics.js's
own telemetry off (``metrics.sampleRate`` 0). ``apiHost`` is SLUICE_INGEST_TRACKING_PUBLIC_URL's,
else the scheme and ``Host`` the settings request came with (so behind a TLS-terminating proxy
set the public URL, or the page would send to ``http://``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web


def api_host(request: web.Request, public_url: str | None) -> tuple[str, str]:
    """(protocol, host[:port]) analytics.js should send events to."""
    if public_url:
        parts = urlsplit(public_url)
        return parts.scheme or "https", parts.netloc + parts.path.rstrip("/")
    return request.scheme, request.host


def project_settings(write_key: str, protocol: str, host: str) -> dict[str, Any]:
    """The settings document for `write_key`, sending to ``protocol://host/v1``."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
            },
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
