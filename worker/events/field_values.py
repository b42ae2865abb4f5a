"""How one field of an event is read: ids, strings, objects, integers and timestamps.

Shared by both normalisers (``worker.events.normalize``, the general one that names every fault,
and ``worker.events.typed_forms``, the one pass for the common shapes), so that a field means
the same whichever takes the event. The readers raise ``WrongType`` or ``InvalidTimestamp``
naming the field; a value without content (missing, null, ``""``) reads as None.

Timestamps are read from ISO-8601, Common Log Format (``22/Nov/2026:20:31:04 +0000``) or epoch
seconds/milliseconds, in the years 1000-9999, and written as UTC ISO-8601 with milliseconds
(``2026-11-22T20:31:04.000Z``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from worker.events import json_codec
from worker.events.errors import InvalidTimestamp, WrongType

# The values of a Segment event's `type`, and the `type` of the other kinds' documents.
SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
ACCESS_LOG_TYPE = "access_log"
LOG_TYPE = "log"
# Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
EPOCH_MILLIS_THRESHOLD = 100_000_000_000
# Integer fields are 64-bit columns in Parquet (worker/events/parquet_schema.py) and `long` in
# Elasticsearch; the JSON parser accepts up to 2**64 - 1.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# str.isdigit() accepts "²" and other digits int() refuses.
ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")
# UTC ISO-8601 with a Z, to the second or the millisecond, years 1000-9999: what Segment's
# libraries send. Such a value is already (nearly) in the form documents carry.
UTC_ISO = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z")


def optional_string(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WrongType(f"`{name}` is {describe(value)}, expected a string")
    return value


def optional_id(fields: dict[str, Any], name: str) -> str | None:
    """Ids are strings; many clients send numbers, which are kept as their decimal text."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WrongType(f"`{name}` is {describe(value)}, expected a string id")
    return str(value)


def optional_object(fields: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise WrongType(f"`{name}` is {describe(value)}, expected an object")
    return value


def optional_int(fields: dict[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value in ("", "-"):
        return None
    if isinstance(value, bool):
        raise WrongType(f"`{name}` is {describe(value)}, expected a number")
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, str) and ASCII_INTEGER.fullmatch(value.strip()):
        return int(value)
    raise WrongType(f"`{name}` is {describe(value)}, expected a number (a 64-bit integer)")


def source_id(fields: dict[str, Any], context: dict[str, Any] | None) -> str | None:
    """A Segment event's source: ``projectId``, ``sourceId`` or ``context.source.id``."""
    for candidate in (fields.get("projectId"), fields.get("sourceId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    if context:
        source = context.get("source")
        if isinstance(source, dict) and isinstance(source.get("id"), str):
            return str(source["id"])
    return None


def access_log_api_key_id(fields: dict[str, Any]) -> str | None:
    """The API key id: ``identity.apiKeyId`` nested or flattened (seed 003), or ``apiKeyId``."""
    identity = fields.get("identity")
    candidates = (
        identity.get("apiKeyId") if isinstance(identity, dict) else None,
        fields.get("identity.apiKeyId"),
        fields.get("apiKeyId"),
    )
    for candidate in candidates:
        # API Gateway writes "-" for a request without a key.
        if isinstance(candidate, str) and candidate and candidate != "-":
            return candidate
    return None


# --- timestamps --------------------------------------------------------------------------------


def optional_timestamp(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if type(value) is str and UTC_ISO.fullmatch(value):
        # The common case, without the round trip through datetime: checked for a real date
        # and time, and given milliseconds if it has none (the same text the slow path makes).
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value if len(value) == 24 else value[:-1] + ".000Z"
    parsed = parse_timestamp(value)
    if parsed is None:
        raise InvalidTimestamp(
            f"`{name}` is {describe(value)}: expected ISO-8601, Common Log Format "
            "(22/Nov/2026:20:31:04 +0000) or epoch seconds/milliseconds"
        )
    return format_timestamp(parsed)


def lenient_timestamp(fields: dict[str, Any], name: str) -> str | None:
    """A timestamp kept for the record only (``originalTimestamp``): one that cannot be read is
    left out rather than failing an event whose own time is fine."""
    try:
        return optional_timestamp(fields, name)
    except InvalidTimestamp:
        return None


@lru_cache(maxsize=4096)
def format_epoch_millis(millis: int) -> str:
    # Records of one producer batch share their timestamp: format each millisecond once.
    return format_timestamp(datetime.fromtimestamp(millis / 1000, UTC))


_PARSERS: tuple[Callable[[str], datetime], ...] = (
    datetime.fromisoformat,
    lambda text: datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"),
)


def parse_timestamp(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from ISO-8601, CLF or epoch s/ms, in the years 1000-9999;
    None if it is none of them."""
    moment = _parse_timestamp(value)
    if moment is None:
        return None
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    # Index names and S3 keys need four-digit years.
    return moment if 1000 <= moment.year <= 9999 else None


def _parse_timestamp(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= EPOCH_MILLIS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if ASCII_INTEGER.fullmatch(text):
        return _parse_timestamp(int(text))
    for parser in _PARSERS:
        try:
            moment = parser(text)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z."""
    # isoformat is several times faster than strftime; years are 1000-9999 (parse_timestamp).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def describe(value: object) -> str:
    """A value for an error message: its JSON type and (the start of) its JSON text."""
    if value is None:
        return "missing"
    text = json_codec.dumps(value).decode() if not isinstance(value, bytes) else repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)
    return f"{kind} ({shown})"
