"""Request bodies: from the bytes of a POST to the Kafka records it carries.

Each path has its form; a body that is not of it is refused whole (400, with the reason), and
nothing of it is produced:

* ``segment_records``: one Segment event, a batch ``{"batch": [...], "context", "sentAt"}``, or
  a JSON array of events (Segment Webhooks (Actions) with batching on). A single event is
  produced unchanged; a batch or an array becomes one record per event, so each event can be
  keyed by its own user; a batch's ``context`` and ``sentAt`` go in each record's headers, and
  the worker applies them (``worker.events.ingest_headers``).
* ``firehose_records``: Firehose's HTTP-endpoint request ``{"requestId", "timestamp",
  "records": [{"data": "<base64>"}]}``. Each record's data is decoded; data holding several
  JSON lines (Firehose concatenates records) becomes one record per line; gzip data (a
  CloudWatch Logs subscription record) is one record, whole, never cut at its newline bytes.
  What the data says is the worker's to judge: what it cannot read is dead-lettered there with
  its bytes, so one bad log line never blocks a whole delivery stream. The delivery stream's ARN
  and common attributes go in every record's headers.
* ``json_records``: a JSON object (or base64 string), a JSON array of them, or NDJSON (one per
  line), each in a form the worker decodes (checked with the worker's own decoder).

Every record's value is bytes the sender sent: an element of a batch or array is cut out of the
body as it was written (``worker.ingest.raw_json``), never parsed and written again.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from worker.events import ingest_headers
from worker.events.cloudwatch import is_gzip, read_subscription
from worker.events.decoding import DecodedRecord, InputForm, decode_record
from worker.events.errors import DecodeError
from worker.ingest import raw_json
from worker.ingest.errors import BadBody, TooLarge
from worker.ingest.keys import record_key

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class IngestRecord:
    """One record to produce to the source topic; `headers` say what the door adds
    (``worker.events.ingest_headers``)."""

    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class FirehoseDelivery:
    """A Firehose request: its id (echoed in the answer) and its records."""

    request_id: str
    records: list[IngestRecord]


def _decode(value: bytes, what: str) -> DecodedRecord:
    """The worker's decoding of `value`; any failure (also of one batch element) is a 400."""
    try:
        decoded = decode_record(value, max_bytes=len(value) + 1)
    except DecodeError as error:
        raise BadBody(f"{what}: {error}") from None
    if decoded.failures:
        _, error = decoded.failures[0]
        raise BadBody(f"{what}: {error}")
    return decoded


def _check_size(records: list[IngestRecord], max_record_bytes: int) -> list[IngestRecord]:
    for index, record in enumerate(records):
        # With the headers it goes out with: a batch's shared context is copied onto each.
        size = len(record.value) + sum(len(value) for _, value in record.headers)
        if size > max_record_bytes:
            raise TooLarge(f"event {index} is {size} bytes, more than the "
                           f"{max_record_bytes} a record may have (SLUICE_MAX_RECORD_BYTES)")
    return records


def _check_segment(decoded: DecodedRecord, what: str) -> None:
    other = {event.form for event in decoded.events} - {InputForm.SEGMENT,
                                                         InputForm.SEGMENT_BATCH}
    if other:
        raise BadBody(f"{what} is not a Segment event (an object with `type`) or batch "
                      f"(`batch`); it reads as: {', '.join(sorted(other))}")


def segment_records(body: bytes, max_record_bytes: int) -> list[IngestRecord]:
    """The records of a Segment webhook body: one event, or one per event of a batch or array."""
    if body.lstrip()[:1] == b"[":
        return _segment_array(body, max_record_bytes)
    decoded = _decode(body, "the body")
    _check_segment(decoded, "the body")
    if decoded.events[0].form is InputForm.SEGMENT:
        return _check_size([IngestRecord(record_key(decoded.events[0].fields, None), body)],
                           max_record_bytes)
    batch = raw_json.batch_envelope(body)
    shared = ((ingest_headers.BATCH_CONTEXT, batch.context) if batch.context else None,
              (ingest_headers.BATCH_SENT_AT, batch.sent_at) if batch.sent_at else None)
    headers = tuple(header for header in shared if header is not None)
    return _check_size([IngestRecord(record_key(event.fields, None), element, headers)
                        for event, element in zip(decoded.events, batch.elements, strict=True)],
                       max_record_bytes)


def _segment_array(body: bytes, max_record_bytes: int) -> list[IngestRecord]:
    """A JSON array of Segment events (Webhooks (Actions) batching): one record per element."""
    elements = raw_json.array_elements(body)
    if not elements:
        raise BadBody("the body is an empty JSON array: no event in it")
    records = []
    for index, element in enumerate(elements):
        decoded = _decode(element, f"element {index}")
        _check_segment(decoded, f"element {index}")
        if decoded.events[0].form is not InputForm.SEGMENT:
            raise BadBody(f"element {index} is a batch: an array holds events")
        records.append(IngestRecord(record_key(decoded.events[0].fields, None), element))
    return _check_size(records, max_record_bytes)


def _loads(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _firehose_data(index: int, data: object) -> bytes:
    if not isinstance(data, str):
        raise BadBody(f"records[{index}].data is missing or not a string (base64 expected)")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadBody(f"records[{index}].data is not valid base64: {error}") from None


def _firehose_lines(raw: bytes) -> list[bytes]:
    """One value per JSON document: the whole data if it parses, else its non-empty lines."""
    stripped = raw.strip()
    if not stripped:
        return []
    if _loads(stripped) is not None:
        return [stripped]
    return [line.strip() for line in stripped.splitlines() if line.strip()]


def firehose_headers(source_arn: str | None, common_attributes: str | None) -> Headers:
    """The headers every record of a delivery gets: the delivery stream's ARN and the common
    attributes configured on it (``X-Amz-Firehose-Common-Attributes``, JSON, checked)."""
    headers = []
    if source_arn:
        headers.append((ingest_headers.FIREHOSE_SOURCE_ARN, source_arn.encode()))
    if common_attributes and common_attributes.strip():
        parsed = _loads(common_attributes.encode())
        if not isinstance(parsed, dict):
            raise BadBody("X-Amz-Firehose-Common-Attributes is not a JSON object")
        headers.append((ingest_headers.FIREHOSE_ATTRIBUTES, common_attributes.encode()))
    return tuple(headers)


def _cloudwatch_key(data: bytes, max_record_bytes: int, fallback: str | None) -> bytes | None:
    """A CloudWatch Logs record's key: its log group and stream (one stream's events keep their
    order), else the fallback; one that cannot be read is the worker's to dead-letter."""
    try:
        subscription = read_subscription(data, max_record_bytes)
    except DecodeError:
        subscription = None
    if subscription is not None and subscription.log_group:
        return f"{subscription.log_group}/{subscription.log_stream or ''}".encode()
    return fallback.encode() if fallback else None


def firehose_records(body: bytes, fallback_key: str | None,
                     max_record_bytes: int, headers: Headers = ()) -> FirehoseDelivery:
    """The request id and records of a Firehose HTTP-endpoint delivery."""
    request = _loads(body)
    if not isinstance(request, dict):
        raise BadBody("the body is not a Firehose request: expected a JSON object with "
                      "`requestId` and `records`")
    request_id = request.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise BadBody("the Firehose request has no `requestId` (a non-empty string)")
    items = request.get("records")
    if not isinstance(items, list):
        raise BadBody("the Firehose request has no `records` list")
    records = []
    for index, item in enumerate(items):
        data = _firehose_data(index, item.get("data") if isinstance(item, dict) else None)
        if is_gzip(data):
            key = _cloudwatch_key(data, max_record_bytes, fallback_key)
            records.append(IngestRecord(key, data, headers))
            continue
        for value in _firehose_lines(data):
            parsed = _loads(value)
            event = parsed if isinstance(parsed, dict) else None
            records.append(IngestRecord(record_key(event, fallback_key), value, headers))
    return FirehoseDelivery(request_id, _check_size(records, max_record_bytes))


def _json_values(body: bytes) -> list[tuple[str, bytes]]:
    """(what, value) per record: the body, the elements of an array, or the lines of NDJSON."""
    whole = _loads(body)
    if isinstance(whole, list):
        if not whole:
            raise BadBody("the body is an empty JSON array: no event in it")
        return [(f"element {n}", element)
                for n, element in enumerate(raw_json.array_elements(body))]
    if whole is not None:
        return [("the body", body.strip())]
    values = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            if _loads(line) is None:
                raise BadBody(f"line {number} is not JSON (the body is neither JSON nor NDJSON)")
            values.append((f"line {number}", line.strip()))
    return values


def json_records(body: bytes, max_record_bytes: int) -> list[IngestRecord]:
    """The records of a plain JSON or NDJSON body; each must be a form the worker reads."""
    records = []
    for what, value in _json_values(body):
        decoded = _decode(value, what)
        records.append(IngestRecord(record_key(decoded.events[0].fields, None), value))
    return _check_size(records, max_record_bytes)
