"""The common shapes in one pass: a Segment event or an access log whose fields have the types
producers send, straight to its document.

``worker.events.normalize`` checks every field of every event one reader at a time, so that a
fault is named (``worker.events.field_values``). Most events have no fault: their ids are text,
their timestamps UTC ISO-8601 or epoch milliseconds, their objects objects. For those this
module builds the same document with a handful of type checks and dict look-ups, reading each
field once, and without the round trips through ``datetime`` that dominated normalisation.

**It only ever answers for what it is sure of.** Every check here is the general path's
condition narrowed: when a field is absent, null or ``""`` it is left out as there; when it has
the common type it is taken as there; anything else (a fault, a CLF or offset time, an id of
more than 64 bits, an event without its producer's id, a time that must come from the worker's
clock) returns None, and the general path decides, naming the fault if there is one. So an event
either gets the document the general path would make, key for key in the same order (the
order is visible in every sink's bytes), or the general path's own answer.
``tests/unit/events/test_typed_forms.py`` holds both paths to that over the benchmark's
events, the hostile corpus and generated variations.

Why not msgspec Structs decoded straight from the bytes? Measured (``python -m
bench.json_decoding``, ``bench/struct_forms.py``), a Struct decodes no faster than a dict (the
nested ``context`` dominates both); reading attributes instead of dict keys saved a few tenths
of a microsecond per record more than this pass; and on lenient or faulty records, which fail
the Struct's types, the general path must decode the record again. Above all it is not exact:
msgspec *skips* the fields a Struct does not name without checking them, so invalid UTF-8 or a
number out of range (``1e400``) in an unknown field passes, where the dict decoder (and so the
dead-letter verdict) rejects the record. Checking for those takes a second scan of every
record, and a regular expression over the bytes took longer than decoding them. So the record
is decoded once, to a dict, by ``worker.events.json_codec``, and this pass reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from worker.events.decoding import EventKind, InputForm, RawEvent
from worker.events.field_values import (
    ACCESS_LOG_TYPE,
    ASCII_INTEGER,
    EPOCH_MILLIS_THRESHOLD,
    INT64_MAX,
    INT64_MIN,
    SEGMENT_TYPES,
    access_log_api_key_id,
    format_epoch_millis,
)
from worker.events.headers import headers_field
from worker.events.records import SourceRecord

Document = tuple[str, dict[str, Any]]


class _General:
    """The answer of a field reader that leaves the event to the general path."""


GENERAL: Final = _General()

# Module constants: an enum member or value looked up per event costs more than a global.
_SEGMENT, _ACCESS_LOG = EventKind.SEGMENT, EventKind.ACCESS_LOG
_FORM_TEXT = {form: form.value for form in InputForm}
_SEGMENT_FORM_TEXT, _ACCESS_LOG_FORM_TEXT = InputForm.SEGMENT.value, InputForm.ACCESS_LOG.value
_from_iso = datetime.fromisoformat
# Epoch milliseconds below 2**33 seconds (the year 2242) are exact through the general path's
# float arithmetic (half an ulp of the seconds is under half a microsecond), so their text is
# their digits; later ones are left to it.
_EXACT_MILLIS_END = 2**33 * 1000
_MILLIS_TEXT = tuple(f".{millis:03d}Z" for millis in range(1000))  # a format spec costs more


def typed_record(obj: dict[str, Any], record: SourceRecord,
                 keep_headers: bool = True) -> Document | None:
    """The event id and document ``decode_record`` and ``normalize`` make of a record whose
    JSON object `obj` is itself one Segment event or access log (no envelope), or None when it
    is not of a common shape. Without RawEvent and DecodedRecord: a record's own event is by
    far the commonest case."""
    if "batch" in obj or "Record" in obj or "payload" in obj:
        return None  # perhaps an envelope: decoding.classify decides
    if "type" in obj:
        built, form = _segment(obj, record), _SEGMENT_FORM_TEXT
    elif "requestId" in obj:
        built, form = _access_log(obj, record), _ACCESS_LOG_FORM_TEXT
    else:
        return None
    if built is None:
        return None
    event_id, document = built
    document["event_id"] = event_id
    document["input_format"] = form
    position = record.position
    document["kafka"] = {
        "topic": position.topic, "partition": position.partition, "offset": position.offset,
    }
    if keep_headers and record.headers:
        headers = headers_field(record.headers)
        if headers is not None:
            document["headers"] = headers
    return built


def typed_document(raw: RawEvent, record: SourceRecord) -> Document | None:
    """The event id and document ``normalize``'s general path makes of `raw` (without the
    record's headers), or None when `raw` is not of a common shape."""
    kind = raw.kind
    if kind is _SEGMENT:
        built = _segment(raw.fields, record)
    elif kind is _ACCESS_LOG:
        built = _access_log(raw.fields, record)
    else:
        return None
    if built is None:
        return None
    event_id, document = built
    if raw.extra:
        document.update(raw.extra)  # as the general path: set outside the JSON, they override
    _place(document, event_id, _FORM_TEXT[raw.form], record, raw.batch_index)
    return built


def _place(document: dict[str, Any], event_id: str, form: str, record: SourceRecord,
           batch_index: int | None) -> None:
    document["event_id"] = event_id
    document["input_format"] = form
    position = record.position
    kafka = document["kafka"] = {
        "topic": position.topic, "partition": position.partition, "offset": position.offset,
    }
    if batch_index is not None:
        kafka["batch_index"] = batch_index


def _segment(fields: dict[str, Any], record: SourceRecord) -> Document | None:
    get = fields.get
    kind = get("type")
    event_id = get("messageId")
    if (type(kind) is not str or kind not in SEGMENT_TYPES
            or type(event_id) is not str or not event_id):
        return None
    # Ids: text as it is; the reader only for anything else (a number, nothing, a fault).
    user_id = get("userId")
    if type(user_id) is not str or not user_id:
        user_id = _id(user_id)
    anonymous_id = get("anonymousId")
    if type(anonymous_id) is not str or not anonymous_id:
        anonymous_id = _id(anonymous_id)
    group_id = get("groupId")
    if group_id is not None:
        group_id = _id(group_id)
    previous_id = get("previousId")
    if previous_id is not None:
        previous_id = _id(previous_id)
    if (user_id is GENERAL or anonymous_id is GENERAL or group_id is GENERAL
            or previous_id is GENERAL or (user_id is None and anonymous_id is None)):
        return None
    received_at = get("receivedAt")
    millis = record.timestamp_ms
    if received_at is None and millis is not None and millis >= 0:
        received_at = format_epoch_millis(millis)  # the common case, without a call more
    else:
        received_at = _received_at(received_at, record)
    sent_at = get("sentAt")
    if sent_at is not None:
        sent_at = timestamp_text(sent_at)
    timestamp = get("timestamp")
    if timestamp is not None:
        timestamp = timestamp_text(timestamp)
    original = get("originalTimestamp")
    if original is not None:
        original = timestamp_text(original)
    if (received_at is GENERAL or sent_at is GENERAL or timestamp is GENERAL
            or original is GENERAL):
        return None
    context = get("context")
    properties = get("properties")
    traits = get("traits")
    integrations = get("integrations")
    if ((context is not None and type(context) is not dict)
            or (properties is not None and type(properties) is not dict)
            or (traits is not None and type(traits) is not dict)
            or (integrations is not None and type(integrations) is not dict)):
        return None
    document: dict[str, Any] = {"type": kind}
    if kind == "track":
        name = get("event")
        if type(name) is not str or not name.strip():
            return None
        document["event"] = name
    name = get("name")
    if name is not None and name != "":
        if type(name) is not str:
            return None
        document["name"] = name
    if anonymous_id is not None:
        document["anonymous_id"] = anonymous_id
    if user_id is not None:
        document["user_id"] = user_id
    if group_id is not None:
        document["group_id"] = group_id
    if previous_id is not None:
        document["previous_id"] = previous_id
    document["timestamp"] = timestamp or original or sent_at or received_at
    if original is not None:
        document["original_timestamp"] = original
    document["received_at"] = received_at
    if sent_at is not None:
        document["sent_at"] = sent_at
    if context is not None:
        document["context"] = context
    if properties is not None:
        document["properties"] = properties
    if traits is not None:
        document["traits"] = traits
    # field_values.source_id, inline: the same conditions in the same order.
    source = get("projectId")
    if not (isinstance(source, str) and source):
        source = get("sourceId")
        if not (isinstance(source, str) and source):
            source = None
            if context:
                context_source = context.get("source")
                if isinstance(context_source, dict) and isinstance(context_source.get("id"),
                                                                   str):
                    source = str(context_source["id"])
    if source is not None:
        document["source_id"] = source
    if integrations is not None:
        document["integrations"] = integrations
    return event_id, document


def _access_log(fields: dict[str, Any], record: SourceRecord) -> Document | None:
    get = fields.get
    request_id = get("requestId")
    if type(request_id) is not str or not request_id:
        return None
    received_at = get("receivedAt")
    millis = record.timestamp_ms
    if received_at is None and millis is not None and millis >= 0:
        received_at = format_epoch_millis(millis)  # the common case, without a call more
    else:
        received_at = _received_at(received_at, record)
    timestamp = timestamp_text(get("requestTimeEpoch"))
    if timestamp is None:
        timestamp = timestamp_text(get("requestTime"))
    if received_at is GENERAL or timestamp is GENERAL:
        return None
    document: dict[str, Any] = {"type": ACCESS_LOG_TYPE, "request_id": request_id,
                                "timestamp": timestamp or received_at, "received_at": received_at}
    # Straight-line: a loop over (field, key) pairs and a reader call per field cost a third
    # of this function. Each text field: absent/null/"" left out, text kept, else GENERAL.
    ip = get("ip")
    if ip is None or ip == "":
        ip = get("sourceIp")
        if ip == "":
            ip = None
    if ip is not None:
        if type(ip) is not str:
            return None
        document["ip"] = ip
    value = get("httpMethod")
    if value is not None and value != "":
        if type(value) is not str:
            return None
        document["http_method"] = value
    value = get("resourcePath")
    if value is not None and value != "":
        if type(value) is not str:
            return None
        document["resource_path"] = value
    value = get("path")
    if value is not None and value != "":
        if type(value) is not str:
            return None
        document["path"] = value
    value = get("protocol")
    if value is not None and value != "":
        if type(value) is not str:
            return None
        document["protocol"] = value
    value = get("status")
    if value is not None:
        if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
            value = _integer(value)
        if value is not None:
            if value is GENERAL:
                return None
            document["status"] = value
    value = get("responseLength")
    if value is not None:
        if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
            value = _integer(value)
        if value is not None:
            if value is GENERAL:
                return None
            document["response_length"] = value
    api_id = get("apiId")
    if api_id is not None and api_id != "":
        if type(api_id) is not str:
            return None
        document["api_id"] = api_id
    else:
        api_id = None
    value = get("stage")
    if value is not None and value != "":
        if type(value) is not str:
            return None
        document["stage"] = value
    user_agent = get("userAgent")
    if user_agent is not None and user_agent != "" and type(user_agent) is not str:
        return None
    identity = get("identity")
    api_key_id = identity.get("apiKeyId") if type(identity) is dict else None
    if type(api_key_id) is not str or not api_key_id or api_key_id == "-":
        api_key_id = access_log_api_key_id(fields)  # the other spellings, in their order
    if api_key_id is not None:
        document["api_key_id"] = api_key_id
    if user_agent is not None and user_agent != "":
        document["user_agent"] = user_agent
    if api_id is not None:
        document["source_id"] = api_id
    return request_id, document


# --- field readers: None for no value, GENERAL for what the general path must read -------------


def _id(value: Any) -> str | _General | None:
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return str(value)  # a number sent as an id is kept as its decimal text
    return GENERAL


def _integer(value: Any) -> int | _General | None:
    if value is None or value == "" or value == "-":  # API Gateway's "-": no value
        return None
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    if type(value) is str and ASCII_INTEGER.fullmatch(value.strip()):
        return int(value)  # API Gateway's log templates quote their numbers
    return GENERAL


def _received_at(value: Any, record: SourceRecord) -> str | _General:
    if value is None or value == "":
        millis = record.timestamp_ms
        if millis is None or millis < 0:
            return GENERAL  # the worker's clock: read where it is read for every event
        return format_epoch_millis(millis)
    return timestamp_text(value) or GENERAL


def timestamp_text(value: Any) -> str | _General | None:
    """A timestamp's document text if it is UTC ISO-8601 with a Z (to the second or the
    millisecond) or epoch seconds/milliseconds as a number or its digits."""
    if type(value) is str:  # the common case first
        size = len(value)
        if ((size == 20 and value[4::3] == "--T::Z")
                or (size == 24 and value[4:20:3] == "--T::." and value[23] == "Z")):
            # The separators of UTC_ISO's two lengths; fromisoformat then accepts only ASCII
            # digits between them, and only a real date and time (not the 30th of February).
            # Cheaper than the regular expression, and the same texts (test_typed_forms).
            if value[0] == "0":
                return GENERAL  # a year before 1000
            try:
                _from_iso(value)
            except ValueError:
                return GENERAL
            return value if size == 24 else value[:19] + ".000Z"
        if not value:
            return None
        if size <= 18 and value.isascii() and value.isdigit():
            return _epoch_text(int(value))
        return GENERAL
    if value is None:
        return None
    if type(value) is int:
        return _epoch_text(value)
    return GENERAL


def _epoch_text(value: int) -> str | _General:
    if 0 <= value < EPOCH_MILLIS_THRESHOLD:
        return _second_text(value) + _MILLIS_TEXT[0]
    if EPOCH_MILLIS_THRESHOLD <= value < _EXACT_MILLIS_END:
        seconds, millis = divmod(value, 1000)
        return _second_text(seconds) + _MILLIS_TEXT[millis]
    return GENERAL


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # The events of a stream are close in time: each second is formatted once.
    return datetime.fromtimestamp(seconds, UTC).isoformat()[:19]
