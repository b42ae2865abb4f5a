"""Decoding: from a record's bytes to the JSON objects of the events it carries.

The input form is detected per record; producers need not say which they use:

1. a Segment-spec event: an object with ``type``;
2. a Segment batch envelope: ``{"batch": [event, …], "sentAt": …, "context": …}``;
3. the Firehose-style envelope ``{"DeliveryStreamName": …, "Record": {"Data": "<base64>"}}``,
   or a bare base64 string (raw bytes or a JSON string) of a JSON object;
4. an API Gateway access-log record: an object with ``requestId``;
5. a CloudWatch Logs subscription record (gzip bytes, ``worker.events.cloudwatch``): one event per
   log event, an access log where the message is one, else a raw log event (``EventKind.LOG``);
6. any of these inside Kafka Connect's JsonConverter envelope ``{"schema": …, "payload": …}``
   (producers with ``schemas.enable=true``): exactly those two keys, ``schema`` an object or
   null. The payload is the record: an object, the JSON text of one (a ``string`` schema) or its
   base64 (a ``bytes`` schema). The schema describes only the payload's shape, which every form
   above is recognised by anyway, so it is not needed.

A batch yields one raw event per element; an element that is not an object fails alone and the
others go on. Field validation and the document shape are ``worker.events.normalize``'s job.
``decode_value`` stops before the form is told (``classify``), so that the pipeline can hand a
record that is itself one common event straight to ``worker.events.typed_forms``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from worker.events import json_codec
from worker.events.cloudwatch import GZIP_MAGIC, Subscription, read_subscription
from worker.events.errors import (
    DecodeError,
    EmptyRecord,
    InvalidBase64,
    InvalidBatch,
    InvalidJson,
    NotAnObject,
    RecordTooLarge,
    UnknownFormat,
)


class InputForm(StrEnum):
    """Which input form a record (or the event inside an envelope) had."""

    SEGMENT = "segment"
    SEGMENT_BATCH = "segment_batch"
    FIREHOSE = "firehose"
    BASE64 = "base64"
    ACCESS_LOG = "access_log"
    CLOUDWATCH_LOGS = "cloudwatch_logs"
    KAFKA_CONNECT = "kafka_connect"


class EventKind(StrEnum):
    """What the decoded object is, whatever envelope carried it."""

    SEGMENT = "segment"
    ACCESS_LOG = "access_log"
    LOG = "log"  # a CloudWatch Logs event whose message is not an access log: kept as text


@dataclass(slots=True)  # not frozen: see worker.events.records.KafkaPosition
class RawEvent:
    """One event object as decoded, before validation and normalisation."""

    kind: EventKind
    form: InputForm
    fields: dict[str, Any]
    batch_index: int | None = None
    # Document fields set from outside the event's own JSON (the CloudWatch log group, what
    # `sluice ingest` recorded in the record's headers): normalisation adds them as they are.
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class DecodedRecord:
    """Everything one record yielded: its events, and the batch elements that failed."""

    events: list[RawEvent] = field(default_factory=list)
    failures: list[tuple[int | None, DecodeError]] = field(default_factory=list)


# Module constants: an enum member looked up on its class per record costs more than a global.
_SEGMENT_KIND, _ACCESS_LOG_KIND = EventKind.SEGMENT, EventKind.ACCESS_LOG
_SEGMENT_FORM, _ACCESS_LOG_FORM = InputForm.SEGMENT, InputForm.ACCESS_LOG

# Base64 text, standard or URL-safe alphabet, optional padding and line breaks.
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")


def decode_record(value: bytes | None, max_bytes: int) -> DecodedRecord:
    """Decode a record value into raw events. Raises DecodeError if nothing can be read."""
    decoded = decode_value(value, max_bytes)
    return classify(decoded) if type(decoded) is dict else decoded


def decode_value(value: bytes | None, max_bytes: int) -> dict[str, Any] | DecodedRecord:
    """A record's JSON object as it is (``classify`` tells its form; the typed pass,
    ``worker.events.typed_forms``, takes most at once), or the events of a record that is not
    a JSON object (gzip, base64, a JSON string). Raises DecodeError if nothing can be read."""
    if not value:
        raise EmptyRecord("the record has no value (null or empty)")
    if len(value) > max_bytes:
        raise RecordTooLarge(
            f"the record is {len(value)} bytes, more than the {max_bytes} allowed "
            "(SLUICE_MAX_RECORD_BYTES)"
        )
    if value[:2] == GZIP_MAGIC:  # cloudwatch.is_gzip, without a call per record
        return _decode_cloudwatch(read_subscription(value, max_bytes))
    try:
        parsed = json_codec.loads(value)  # integers beyond 64 bits kept exactly
    except orjson.JSONDecodeError as error:
        if _BASE64_TEXT.match(value):
            return _classify(_decode_base64_object(value, "the record"), InputForm.BASE64)
        raise InvalidJson(f"the record is not valid JSON: {error}") from None
    if type(parsed) is dict:  # the common case first
        return parsed
    if isinstance(parsed, str):
        inner = _decode_base64_object(parsed.encode(), "the JSON string")
        return _classify(inner, InputForm.BASE64)
    raise NotAnObject(
        f"the record is JSON {_json_type(parsed)}, not an object; expected a Segment event, "
        "a batch, a Firehose envelope or an access-log record"
    )


def classify(obj: dict[str, Any]) -> DecodedRecord:
    """The events of a record's JSON object, envelopes unwrapped. Raises DecodeError."""
    return _classify(obj, None)


def _classify(obj: dict[str, Any], outer_form: InputForm | None) -> DecodedRecord:
    """Decide what an object is and unwrap envelopes."""
    if len(obj) == 2 and "payload" in obj and isinstance(obj.get("schema", 0), dict | None):
        if outer_form is not None:
            raise UnknownFormat("a Kafka Connect envelope inside another envelope is not "
                                "supported")
        return _classify(_connect_payload(obj["payload"], obj["schema"]),
                         InputForm.KAFKA_CONNECT)
    if "batch" in obj:
        return _decode_batch(obj)
    record = obj.get("Record")
    if isinstance(record, dict) and "Data" in record:
        if outer_form is not None:
            raise UnknownFormat("a Firehose envelope inside another envelope is not supported")
        data = record["Data"]
        if not isinstance(data, str):
            raise InvalidBase64(f"Record.Data is JSON {_json_type(data)}, expected a base64 string")
        inner = _decode_base64_object(data.encode(), "Record.Data")
        return _classify(inner, InputForm.FIREHOSE)
    if "type" in obj:
        kind, own_form = _SEGMENT_KIND, _SEGMENT_FORM
    elif "requestId" in obj:
        kind, own_form = _ACCESS_LOG_KIND, _ACCESS_LOG_FORM
    else:
        keys = ", ".join(sorted(obj)[:8]) or "none"
        raise UnknownFormat(
            "the object is not a Segment event (no `type`), a batch (no `batch`), a Firehose "
            f"envelope (no `Record.Data`) or an access-log record (no `requestId`); keys: {keys}"
        )
    # Both lists given: a default_factory call per field made this the dearer half.
    return DecodedRecord([RawEvent(kind, outer_form or own_form, obj)], [])


def _connect_payload(payload: Any, schema: dict[str, Any] | None) -> dict[str, Any]:
    """The object a Kafka Connect JsonConverter envelope carries."""
    if isinstance(payload, dict):
        return payload
    if payload is None:
        raise EmptyRecord("the Kafka Connect envelope's payload is null (a tombstone)")
    if not isinstance(payload, str):
        raise NotAnObject(f"the Kafka Connect envelope's payload is JSON {_json_type(payload)}, "
                          "not an object")
    if schema is not None and schema.get("type") == "bytes":  # JsonConverter writes base64
        return _decode_base64_object(payload.encode(), "the Kafka Connect payload (bytes)")
    try:
        inner = json_codec.loads(payload.encode())
    except orjson.JSONDecodeError as error:
        raise InvalidJson(f"the Kafka Connect payload is a string but not JSON: {error}") from None
    if not isinstance(inner, dict):
        raise NotAnObject(f"the Kafka Connect payload is a string of JSON {_json_type(inner)}, "
                          "not of an object")
    return inner


def _decode_batch(envelope: dict[str, Any]) -> DecodedRecord:
    batch = envelope["batch"]
    if not isinstance(batch, list):
        raise InvalidBatch(f"`batch` is JSON {_json_type(batch)}, expected a list of events")
    if not batch:
        raise InvalidBatch("`batch` is an empty list: the record carries no event")
    shared_context = envelope.get("context")
    sent_at = envelope.get("sentAt")
    decoded = DecodedRecord()
    for index, element in enumerate(batch):
        if not isinstance(element, dict):
            decoded.failures.append(
                (index, NotAnObject(f"batch[{index}] is JSON {_json_type(element)}, not an object"))
            )
            continue
        if "type" not in element:
            decoded.failures.append(
                (index, UnknownFormat(f"batch[{index}] has no `type`: not a Segment event"))
            )
            continue
        event = dict(element)
        # The envelope's context and sentAt apply to every event that does not carry its own.
        if isinstance(shared_context, dict):
            own = event.get("context")
            event["context"] = {**shared_context, **own} if isinstance(own, dict) else (
                own if own is not None else shared_context
            )
        if sent_at is not None:
            event.setdefault("sentAt", sent_at)
        decoded.events.append(RawEvent(EventKind.SEGMENT, InputForm.SEGMENT_BATCH, event, index))
    return decoded


def _decode_cloudwatch(subscription: Subscription) -> DecodedRecord:
    """One event per log event (none for a CONTROL_MESSAGE), numbered by its place in
    `logEvents`; the log group and stream go on each document."""
    decoded = DecodedRecord()
    where = {"log_group": subscription.log_group, "log_stream": subscription.log_stream}
    where = {name: value for name, value in where.items() if value}
    for index, log_event in enumerate(subscription.log_events):
        message = log_event["message"]
        parsed = _json_object(message)
        if parsed is not None and "requestId" in parsed:
            raw = RawEvent(EventKind.ACCESS_LOG, InputForm.CLOUDWATCH_LOGS, parsed, index)
        else:
            raw = RawEvent(EventKind.LOG, InputForm.CLOUDWATCH_LOGS, dict(log_event), index)
        raw.extra = dict(where)
        decoded.events.append(raw)
    return decoded


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):
        return None
    try:
        parsed = json_codec.loads(text.encode())  # integers beyond 64 bits kept exactly
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _decode_base64_object(text: bytes, what: str) -> dict[str, Any]:
    compact = b"".join(text.split())
    try:
        raw = base64.b64decode(compact + b"=" * (-len(compact) % 4), altchars=_altchars(compact),
                               validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidBase64(f"{what} is not valid base64: {error}") from None
    try:
        inner = json_codec.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidJson(f"{what} decodes from base64 but not to JSON: {error}") from None
    if not isinstance(inner, dict):
        raise NotAnObject(f"{what} decodes to JSON {_json_type(inner)}, not an object")
    return inner


def _altchars(text: bytes) -> bytes | None:
    # URL-safe base64 uses - and _ instead of + and /.
    return b"-_" if (b"-" in text or b"_" in text) else None


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
