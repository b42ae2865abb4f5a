"""What `sluice ingest` adds to a record travels in its Kafka headers, never in its value.

The value of a record that `sluice ingest` produces is exactly the bytes its sender sent: a whole
event, one element of a batch or JSON array cut out of the body byte for byte (never parsed and
written again, so digits beyond 64 bits and key order survive), or one Firehose record's data.
What the door knows besides (the time it received the request, the client's address, the source
a write key names, a batch's shared ``context`` and ``sentAt``, Firehose's request attributes)
goes into ``ingest.*`` headers, and the decode stage applies it here, as a function of the
record alone: a record consumed again, or replayed from the dead-letter topic (which keeps the
headers), gives the same document.

Only `sluice ingest` writes these headers from an HTTP request; it never forwards a header a
client chose. A Kafka producer that writes them itself is trusted like any producer of the topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from worker.events.decoding import DecodedRecord, EventKind, RawEvent
from worker.events.tracking import apply_segment_server_fields

PREFIX = "ingest."
RECEIVED_AT = f"{PREFIX}received_at"  # the door's clock when the request arrived (ISO, UTC, ms)
CLIENT_IP = f"{PREFIX}client_ip"  # the client's address (worker/ingest/client_address.py)
SOURCE_ID = f"{PREFIX}source_id"  # the source the request's write key names
SOURCE_NAME = f"{PREFIX}source_name"
BATCH_CONTEXT = f"{PREFIX}batch.context"  # a batch's shared `context`, its JSON as sent
BATCH_SENT_AT = f"{PREFIX}batch.sent_at"  # a batch's `sentAt`, its JSON as sent
FIREHOSE_SOURCE_ARN = f"{PREFIX}firehose.source_arn"  # X-Amz-Firehose-Source-Arn
# X-Amz-Firehose-Common-Attributes: {"commonAttributes": {name: value}}, as sent
FIREHOSE_ATTRIBUTES = f"{PREFIX}firehose.common_attributes"
TRACKING_NAMES = frozenset({RECEIVED_AT, CLIENT_IP, SOURCE_ID, SOURCE_NAME})


@dataclass(frozen=True, slots=True)
class IngestMeta:
    """The ``ingest.*`` headers of one record, read."""

    received_at: str | None = None
    client_ip: str | None = None
    source_id: str | None = None
    source_name: str | None = None
    batch_context: Any = None
    batch_sent_at: Any = None
    firehose_source_arn: str | None = None
    firehose_attributes: dict[str, Any] | None = None


def ingest_meta(headers: Sequence[tuple[str, bytes]]) -> IngestMeta | None:
    """The ``ingest.*`` headers of a record, or None if it has none."""
    found = {name: value for name, value in headers if name.startswith(PREFIX)}
    if not found:
        return None
    attributes = _json(found.get(FIREHOSE_ATTRIBUTES))
    if isinstance(attributes, dict) and isinstance(attributes.get("commonAttributes"), dict):
        attributes = attributes["commonAttributes"]
    return IngestMeta(
        received_at=_text(found.get(RECEIVED_AT)),
        client_ip=_text(found.get(CLIENT_IP)),
        source_id=_text(found.get(SOURCE_ID)),
        source_name=_text(found.get(SOURCE_NAME)),
        batch_context=_json(found.get(BATCH_CONTEXT)),
        batch_sent_at=_json(found.get(BATCH_SENT_AT)),
        firehose_source_arn=_text(found.get(FIREHOSE_SOURCE_ARN)),
        firehose_attributes=attributes if isinstance(attributes, dict) and attributes else None,
    )


def apply_ingest_meta(decoded: DecodedRecord, meta: IngestMeta) -> None:
    """Apply what the door recorded to every event the record's value yielded."""
    extra: dict[str, Any] = {}
    if meta.source_id:
        extra["source_id"] = meta.source_id
    if meta.source_name:
        extra["source_name"] = meta.source_name
    if meta.firehose_source_arn:
        extra["firehose_source_arn"] = meta.firehose_source_arn
    if meta.firehose_attributes:
        extra["firehose_attributes"] = meta.firehose_attributes
    for event in decoded.events:
        if event.kind is EventKind.SEGMENT:
            _apply_batch_envelope(event, meta)
            if meta.received_at:
                apply_segment_server_fields(event, meta.received_at, meta.client_ip)
        if extra:
            event.extra = {**(event.extra or {}), **extra}


def _apply_batch_envelope(event: RawEvent, meta: IngestMeta) -> None:
    """A batch element's shared context and sentAt, as the batch form applies them
    (``worker.events.decoding``): the element's own win."""
    fields = event.fields
    shared = meta.batch_context
    if isinstance(shared, dict):
        own = fields.get("context")
        fields["context"] = ({**shared, **own} if isinstance(own, dict)
                             else own if own is not None else dict(shared))
    if meta.batch_sent_at is not None:
        fields.setdefault("sentAt", meta.batch_sent_at)


def _text(value: bytes | None) -> str | None:
    if not value:
        return None
    return value.decode(errors="replace")


def _json(value: bytes | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
