"""Normalisation: one document shape for every event, whatever form it came in.

The shape follows the Elasticsearch mapping users already run (seed 001): ``event_id``,
``type``, ``event``, ``anonymous_id``, ``user_id``, ``timestamp``, ``received_at``, ``sent_at``,
``context``, ``properties``, ``traits``, ``source_id`` …, plus the API Gateway access-log fields
(``request_id``, ``http_method``, ``status``, ``api_key_id`` …), the input form and the Kafka
position, and the record's headers (``worker.events.headers``). Timestamps are UTC ISO-8601 with
milliseconds (``2026-11-22T20:31:04.000Z``).
Fields without a value are left out rather than written as null.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.events import json_codec
from worker.events.decoding import EventKind, RawEvent
from worker.events.errors import MissingField, UnencodableEvent, UnknownFormat, WrongType
from worker.events.field_values import (
    ACCESS_LOG_TYPE,
    LOG_TYPE,
    SEGMENT_TYPES,
    access_log_api_key_id,
    describe,
    format_epoch_millis,
    format_timestamp,
    lenient_timestamp,
    optional_id,
    optional_int,
    optional_object,
    optional_string,
    optional_timestamp,
    parse_timestamp,
    source_id,
)
from worker.events.headers import headers_field
from worker.events.records import REPLAY_EVENT_ID_HEADER, SourceRecord
from worker.events.typed_forms import typed_document

# Read by other packages from here, where the document shape is defined.
__all__ = ["derived_event_id", "format_timestamp", "general_document", "normalize",
           "parse_timestamp", "replayed_event_id"]


def normalize(raw: RawEvent, record: SourceRecord,
              keep_headers: bool = True) -> tuple[str, dict[str, Any]]:
    """The event id and document of a raw event; with `keep_headers`, the record's headers
    too (``worker.events.headers``). Raises DecodeError if a field is invalid.

    The common shapes take one tight pass (``worker.events.typed_forms``), which makes the
    same document; whatever it does not take, and every fault, is the general path's."""
    typed = typed_document(raw, record)
    event_id, document = typed if typed is not None else general_document(raw, record)
    if keep_headers and record.headers:
        headers = headers_field(record.headers)
        if headers is not None:
            document["headers"] = headers
    return event_id, document


def general_document(raw: RawEvent, record: SourceRecord) -> tuple[str, dict[str, Any]]:
    """The event id and document of a raw event, every field checked and every fault named,
    without the record's headers."""
    received_at = _received_at(raw.fields, record)
    if raw.kind is EventKind.SEGMENT:
        document = _segment_document(raw.fields, received_at)
        producer_id = raw.fields.get("messageId")
    elif raw.kind is EventKind.LOG:
        document = _log_document(raw.fields, received_at)
        producer_id = raw.fields.get("id")
    else:
        document = _access_log_document(raw.fields, received_at)
        producer_id = raw.fields.get("requestId")
    if raw.extra:
        # Set outside the event's JSON: the write key's source, the log group, Firehose's
        # attributes (``worker.events.ingest_headers``, ``decoding``); they override.
        document.update(raw.extra)
    event_id = (
        str(producer_id)
        if isinstance(producer_id, (str, int)) and str(producer_id)
        else replayed_event_id(raw, record) or derived_event_id(raw, record)
    )
    document["event_id"] = event_id
    document["input_format"] = raw.form.value
    position = record.position
    kafka = document["kafka"] = {
        "topic": position.topic, "partition": position.partition, "offset": position.offset,
    }
    if raw.batch_index is not None:
        kafka["batch_index"] = raw.batch_index
    return event_id, document


def replayed_event_id(raw: RawEvent, record: SourceRecord) -> str | None:
    """The id a replayed event had when it failed (``sluice.replay.event_id``, set by
    ``sluice dlq replay``): its derived id came from its first Kafka position, and a new id
    would duplicate it in Elasticsearch and disagree with the copy other sinks hold. Only for
    the record's own event: a replay carries exactly one event (one event of a batch is
    replayed alone)."""
    if raw.batch_index is not None or not record.headers:
        return None
    for name, value in record.headers:
        if name == REPLAY_EVENT_ID_HEADER and value:
            return value.decode(errors="replace")
    return None


def derived_event_id(raw: RawEvent, record: SourceRecord) -> str:
    """A deterministic id from the Kafka position and the content: the same record consumed
    again gets the same id (a dead letter's replay keeps it through `replayed_event_id`)."""
    position = record.position
    digest = hashlib.sha256()
    digest.update(f"{position.topic}/{position.partition}/{position.offset}/".encode())
    digest.update(f"{raw.batch_index}/".encode())
    try:
        digest.update(json_codec.dumps(raw.fields, option=orjson.OPT_SORT_KEYS))
    except TypeError as error:  # nested more deeply than the encoder allows
        raise UnencodableEvent(f"the event cannot be encoded as JSON: {error}") from None
    return digest.hexdigest()[:32]


# --- Segment events ----------------------------------------------------------------------------


def _segment_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    kind = fields.get("type")
    if not isinstance(kind, str):
        raise WrongType(f"`type` is {describe(kind)}, expected one of {_types_list()}")
    if kind not in SEGMENT_TYPES:
        raise UnknownFormat(f"`type` is {kind!r}, expected one of {_types_list()}")
    user_id = optional_id(fields, "userId")
    anonymous_id = optional_id(fields, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise MissingField("a Segment event needs `userId` or `anonymousId`; it has neither")
    event_name = fields.get("event")
    if kind == "track" and (not isinstance(event_name, str) or not event_name.strip()):
        raise MissingField(
            f"a track event needs a non-empty string `event`; got {describe(event_name)}"
        )
    context = optional_object(fields, "context")
    sent_at = optional_timestamp(fields, "sentAt")
    timestamp = (
        optional_timestamp(fields, "timestamp")
        or optional_timestamp(fields, "originalTimestamp")
        or sent_at
        or received_at
    )
    return _drop_none(
        {
            "type": kind,
            "event": event_name if kind == "track" else None,
            "name": optional_string(fields, "name"),
            "anonymous_id": anonymous_id,
            "user_id": user_id,
            "group_id": optional_id(fields, "groupId"),
            "previous_id": optional_id(fields, "previousId"),
            "timestamp": timestamp,
            "original_timestamp": lenient_timestamp(fields, "originalTimestamp"),
            "received_at": received_at,
            "sent_at": sent_at,
            "context": context,
            "properties": optional_object(fields, "properties"),
            "traits": optional_object(fields, "traits"),
            "source_id": source_id(fields, context),
            "integrations": optional_object(fields, "integrations"),
        }
    )


def _types_list() -> str:
    return "/".join(sorted(SEGMENT_TYPES))


# --- raw log events (CloudWatch Logs messages that are not access logs) ---------------------------


def _log_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    message = fields.get("message")
    if not isinstance(message, str):
        raise WrongType(f"a log event's `message` is {describe(message)}, expected text")
    return _drop_none(
        {
            "type": LOG_TYPE,
            "message": message,
            "timestamp": optional_timestamp(fields, "timestamp") or received_at,
            "received_at": received_at,
        }
    )


# --- API Gateway access logs -------------------------------------------------------------------


def _access_log_document(fields: dict[str, Any], received_at: str) -> dict[str, Any]:
    request_id = fields.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise MissingField(
            f"an access-log record needs a string `requestId`; got {describe(request_id)}"
        )
    timestamp = (
        optional_timestamp(fields, "requestTimeEpoch")
        or optional_timestamp(fields, "requestTime")
        or received_at
    )
    return _drop_none(
        {
            "type": ACCESS_LOG_TYPE,
            "request_id": request_id,
            "timestamp": timestamp,
            "received_at": received_at,
            "ip": optional_string(fields, "ip") or optional_string(fields, "sourceIp"),
            "http_method": optional_string(fields, "httpMethod"),
            "resource_path": optional_string(fields, "resourcePath"),
            "path": optional_string(fields, "path"),
            "protocol": optional_string(fields, "protocol"),
            "status": optional_int(fields, "status"),
            "response_length": optional_int(fields, "responseLength"),
            "api_id": optional_string(fields, "apiId"),
            "stage": optional_string(fields, "stage"),
            "api_key_id": access_log_api_key_id(fields),
            "user_agent": optional_string(fields, "userAgent"),
            "source_id": optional_string(fields, "apiId"),
        }
    )


# --- field helpers -----------------------------------------------------------------------------


def _received_at(fields: dict[str, Any], record: SourceRecord) -> str:
    received = optional_timestamp(fields, "receivedAt")
    if received:
        return received
    if record.timestamp_ms is not None and record.timestamp_ms >= 0:
        return format_epoch_millis(record.timestamp_ms)
    return format_timestamp(datetime.now(UTC))


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
