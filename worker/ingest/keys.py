"""Record keys: the broker keeps one key's records in one partition, in the order produced.

* a Segment event is keyed by its ``userId``, else its ``anonymousId``: one user's (or one
  anonymous visitor's) events keep their order;
* an API Gateway access log is keyed by its API key (``identity.apiKeyId`` or ``apiKeyId``),
  else its ``apiId``: one client's (or one API's) calls keep their order;
* anything else gets the request's fallback: for Firehose deliveries the delivery stream
  (``X-Amz-Firehose-Source-Arn``), so one stream's unkeyed records keep their order; for the
  other paths none, and the producer spreads those records over the partitions.

A Segment batch that the JSON path passes on whole is keyed by its first event.
"""

from __future__ import annotations

from typing import Any


def _text(value: object) -> str | None:
    # Ids sent as numbers are the same user as the same digits sent as text.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value)
        return text or None
    return None


def event_key(event: dict[str, Any]) -> str | None:
    """The ordering key of one event object, or None if it names no user, client or API."""
    if "type" in event:
        return _text(event.get("userId")) or _text(event.get("anonymousId"))
    identity = event.get("identity")
    api_key = _text(identity.get("apiKeyId")) if isinstance(identity, dict) else None
    return (api_key or _text(event.get("identity.apiKeyId")) or _text(event.get("apiKeyId"))
            or _text(event.get("apiId")))


def record_key(event: dict[str, Any] | None, fallback: str | None) -> bytes | None:
    """The Kafka key of a record carrying `event` (UTF-8), else the fallback's."""
    key = event_key(event) if event is not None else None
    key = key or fallback
    return key.encode() if key else None
