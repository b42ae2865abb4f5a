"""The benchmark's traffic: realistic single events of 500–800 bytes.

Seven in ten are Segment-spec events with the context a browser library sends (page, user
agent, locale, campaign); three in ten are API Gateway access-log records with an API key the
catalog knows, so enrichment does a real lookup. Every event carries its id (`messageId` or
`requestId`), which every runner uses as the document id.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

from worker.local.samples import API_KEYS, SampleTraffic

USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
)
PAGES = ("/pricing", "/docs/getting-started", "/blog/2026/11/streaming", "/signup", "/account")
SEGMENT_SHARE = 0.7


def bench_events(count: int, seed: int = 11) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of `count` events; the key is the event id, as most producers set it."""
    traffic = SampleTraffic(seed=seed)
    chooser = random.Random(seed)
    for _ in range(count):
        if chooser.random() < SEGMENT_SHARE:
            event = traffic.segment_event()
            path = chooser.choice(PAGES)
            event["context"] = {
                "library": {"name": "analytics.js", "version": "4.1.0"},
                "ip": event["context"]["ip"],  # type: ignore[index]
                "userAgent": chooser.choice(USER_AGENTS),
                "locale": "en-US",
                "timezone": "Europe/Berlin",
                "page": {"path": path, "url": f"https://www.example.com{path}",
                         "referrer": "https://www.google.com/", "title": "Example"},
                "campaign": {"name": "autumn", "source": "newsletter", "medium": "email"},
            }
            event_id = event["messageId"]
        else:
            event = traffic.access_log()
            event["identity"] = {"apiKeyId": chooser.choice(API_KEYS[:2]),
                                 "sourceIp": event["ip"],
                                 "userAgent": chooser.choice(USER_AGENTS)}
            event["integrationLatency"] = chooser.randint(5, 900)
            event["domainName"] = "api.example.com"
            event["requestTimeEpoch"] = 1_763_800_000_000 + chooser.randint(0, 3_600_000)
            event_id = event["requestId"]
        yield str(event_id).encode(), orjson.dumps(event)
