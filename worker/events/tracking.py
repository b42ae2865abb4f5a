"""What Segment's servers add to an event of its tracking API, done the same way.

Applied by the decode stage to events that came through `sluice ingest`'s tracking API (their
record has an ``ingest.received_at`` header, ``worker.events.ingest_headers``), from what the
door recorded when the request arrived. Each rule follows a section of Segment's spec:

* ``receivedAt``: the door's clock when the request arrived, whatever the event says ("Spec:
  Common Fields", section *Timestamps*, ``receivedAt``: "added to incoming messages as soon as
  they hit our API").
* ``originalTimestamp`` and ``timestamp``: the client's ``timestamp`` (or its
  ``originalTimestamp``) is kept as ``originalTimestamp``, and ``timestamp`` becomes
  ``receivedAt − (sentAt − originalTimestamp)``, correcting the device's clock skew (*Timestamps*,
  "Timestamp Overview" and ``sentAt``: sending and receiving are taken to happen at the same
  moment, so their difference is the device's skew). Without ``sentAt`` nothing can be corrected
  and ``timestamp`` stays as sent; without any client time, ``timestamp`` is ``receivedAt``.
* ``context.ip``: the client's address (``X-Forwarded-For`` believed only from trusted proxies),
  for events that do not carry one, and only for client-side libraries ("Spec: Common Fields",
  section *Context fields automatically collected*: "IP Address is not collected by our
  libraries, but instead filled in by our servers when it receives a message for client side
  events only"). A server-side library's request comes from the server, not the user, so
  events of the libraries in ``SERVER_LIBRARIES`` are left without one, as Segment leaves them.
* ``messageId``: kept exactly as sent (*Structure*: "Automatically collected by Segment, a
  unique identifier for each message that lets you find an individual message across the API"):
  it is the event's id in every sink, so a retried request overwrites instead of doubling
  (``worker.pipeline.dedupe`` for S3).
* ``projectId``: Segment's servers stamp the source on each event; here the write key's source
  is the document's ``source_id`` (``worker.events.ingest_headers``), whatever the event says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.events.decoding import RawEvent
from worker.events.normalize import format_timestamp, parse_timestamp

# `context.library.name` of Segment's server-side libraries: their requests come from a server,
# so the connection's address is not the user's.
SERVER_LIBRARIES = frozenset({
    "analytics-python", "@segment/analytics-node", "analytics-node", "analytics-ruby",
    "analytics-go", "analytics-java", "analytics-php", "analytics.NET", "analytics-dotnet",
    "analytics-clojure",
})


def apply_segment_server_fields(event: RawEvent, received_at: str, client_ip: str | None) -> None:
    """Set ``receivedAt``, ``originalTimestamp``, the corrected ``timestamp`` and
    ``context.ip`` on one Segment event, as Segment's servers do (see the module docstring)."""
    fields = event.fields
    fields["receivedAt"] = received_at
    _correct_clock_skew(fields, received_at)
    if client_ip and _from_a_client_library(fields):
        context = fields.get("context")
        if context is None:
            fields["context"] = {"ip": client_ip}
        elif isinstance(context, dict) and not context.get("ip"):
            fields["context"] = {**context, "ip": client_ip}


def corrected_timestamp(received_at: datetime, sent_at: datetime,
                        original: datetime) -> datetime | None:
    """``receivedAt − (sentAt − originalTimestamp)``; None if it leaves the years 1000-9999."""
    try:
        corrected = received_at - (sent_at - original)
    except OverflowError:
        return None
    return corrected if 1000 <= corrected.year <= 9999 else None


def _correct_clock_skew(fields: dict[str, Any], received_at: str) -> None:
    original_text = fields.get("timestamp")
    if original_text is None:
        original_text = fields.get("originalTimestamp")
    if original_text is None:
        return  # no client time: the document's timestamp is receivedAt
    fields["originalTimestamp"] = original_text
    original = parse_timestamp(original_text)
    sent_at = parse_timestamp(fields.get("sentAt"))
    received = parse_timestamp(received_at)
    if original is None or sent_at is None or received is None:
        return  # as sent: normalisation dead-letters a timestamp it cannot read
    corrected = corrected_timestamp(received, sent_at, original)
    if corrected is not None:
        fields["timestamp"] = format_timestamp(corrected)


def _from_a_client_library(fields: dict[str, Any]) -> bool:
    context = fields.get("context")
    library = context.get("library") if isinstance(context, dict) else None
    name = library.get("name") if isinstance(library, dict) else None
    return name not in SERVER_LIBRARIES
