"""Tracking API bodies: from a ``/v1/…`` request's bytes to its records, within Segment's limits.

* a batch (``/v1/batch``, ``/v1/import``, analytics.js's ``/v1/b``): ``{"batch": [event, …],
  "context", "sentAt", "writeKey"}``; one record per element, its value the element's bytes as
  sent (``worker.ingest.raw_json``), the batch's ``context`` and ``sentAt`` in the record's
  headers (``worker.events.ingest_headers``);
* a single call (``/v1/track`` … ``/v1/alias``, analytics.js's ``/v1/t``, ``/v1/p`` …): the body
  is the event, produced as sent. Segment's HTTP API takes the call's type from the path, so a
  body without ``type`` gets the path's prepended (``{"type":"track",`` before the rest of the
  body, byte for byte): the only bytes Sluice ever adds to an event.

Limits, as Segment documents them for its tracking API ("HTTP Tracking API", *Max request
size*): an event at most SLUICE_INGEST_TRACKING_MAX_EVENT_BYTES (32 KB), a batch at most
SLUICE_INGEST_TRACKING_MAX_BATCH_BYTES (500 KB) and SLUICE_INGEST_TRACKING_MAX_BATCH_EVENTS
(2,500 events); past one, the whole request is refused with 400 and nothing is produced, as
Segment's libraries expect (they do not retry a 400). What an event says is the worker's to
judge: an element that is no event (no ``userId`` nor ``anonymousId``, not an object, …) is
produced like the others and dead-lettered by the worker with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from worker.config import Settings
from worker.events import ingest_headers as names
from worker.ingest.errors import BadBody
from worker.ingest.forms import IngestRecord
from worker.ingest.raw_json import batch_envelope, check_json, is_object, key_of

# Path segments under /v1/: the calls, by their full and their analytics.js names.
CALLS = {"track": "track", "identify": "identify", "page": "page", "screen": "screen",
         "group": "group", "alias": "alias", "t": "track", "i": "identify", "p": "page",
         "s": "screen", "g": "group", "a": "alias"}
BATCH_CALLS = frozenset({"batch", "import", "b"})


@dataclass(frozen=True, slots=True)
class TrackingBody:
    """The records of a tracking request (without the door's headers yet), and the write key
    its body names, if any."""

    records: list[IngestRecord]
    write_key: str | None


def body_limit(settings: Settings, call: str) -> int:
    """The largest body a call may have: a batch's, or one event's."""
    if call in BATCH_CALLS:
        return settings.ingest_tracking_max_batch_bytes
    return settings.ingest_tracking_max_event_bytes


def tracking_body(body: bytes, call: str, settings: Settings) -> TrackingBody:
    """The records of a ``/v1/<call>`` body; BadBody (400) if it is not one or breaks a limit."""
    if call in BATCH_CALLS:
        return _batch(body, settings)
    return _single(body, CALLS[call], settings)


def _batch(body: bytes, settings: Settings) -> TrackingBody:
    batch = batch_envelope(body)
    most = settings.ingest_tracking_max_batch_events
    if len(batch.elements) > most:
        raise BadBody(f"the batch has {len(batch.elements)} events, more than the {most} "
                      "allowed (SLUICE_INGEST_TRACKING_MAX_BATCH_EVENTS)")
    shared: list[tuple[str, bytes]] = []
    if batch.context:
        shared.append((names.BATCH_CONTEXT, batch.context))
    if batch.sent_at:
        shared.append((names.BATCH_SENT_AT, batch.sent_at))
    headers = tuple(shared)
    # Each event goes out with the batch's shared fields: together they are the event Segment
    # limits (and a large context is not copied onto thousands of records).
    shared_bytes = len(batch.context) + len(batch.sent_at)
    records = []
    for index, element in enumerate(batch.elements):
        _check_event_size(element, settings, f"batch[{index}]", shared_bytes)
        records.append(IngestRecord(key_of(element), element, headers))
    return TrackingBody(records, _text(batch.write_key))


def _single(body: bytes, call_type: str, settings: Settings) -> TrackingBody:
    check_json(body)
    event = body.strip()
    if not is_object(event):
        raise BadBody(f"a `{call_type}` call's body is a JSON object (the event)")
    _check_event_size(event, settings, "the event")
    fields = _fields_of(event)
    if "batch" in fields:
        raise BadBody(f"a `{call_type}` call's body is one event; send batches to /v1/batch")
    if "type" not in fields:
        event = _with_type(event, call_type)
    return TrackingBody([IngestRecord(key_of(event), event)], _text(fields.get("writeKey")))


def _check_event_size(event: bytes, settings: Settings, what: str, shared: int = 0) -> None:
    limit = settings.ingest_tracking_max_event_bytes
    size = len(event) + shared
    if size > limit:
        with_shared = " with the batch's context and sentAt" if shared else ""
        raise BadBody(f"{what} is {size} bytes{with_shared}, more than the {limit} an event may "
                      "have (SLUICE_INGEST_TRACKING_MAX_EVENT_BYTES)")


class _Single(msgspec.Struct):
    """The fields of a single call's body that the door reads."""

    type: Any = None
    writeKey: Any = None
    batch: Any = None


_SINGLE = msgspec.json.Decoder(_Single)


def _fields_of(event: bytes) -> dict[str, Any]:
    single = _SINGLE.decode(event)
    return {name: value for name, value in (("type", single.type), ("writeKey", single.writeKey),
                                            ("batch", single.batch)) if value is not None}


def _with_type(event: bytes, call_type: str) -> bytes:
    """The event with ``"type"`` first, every byte of it after (an object, checked)."""
    rest = event[1:]
    separator = b"" if rest.lstrip().startswith(b"}") else b","
    return b'{"type":"' + call_type.encode() + b'"' + separator + rest


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
