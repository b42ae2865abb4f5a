"""What a real Elasticsearch does with a document, by its documented mapping rules.

The local ES-API server accepts what Elasticsearch refuses (a forwarded IP list in an `ip`
field, an object where a boolean was mapped), so a test there proves nothing about a template.
This checker applies the rules of Elastic's mapping reference to a document, field by field, and
keeps the dynamic mappings an index would add, so the second document sees what the first one
fixed. It covers the types Sluice's template uses; an unknown type fails loudly.

Rules (Elasticsearch 8 and 9 mapping reference):

* ``object`` (or properties without a type): the value must be an object, else the document is
  rejected ("tried to parse field as object, but found a concrete value"); ``enabled: false``
  skips parsing entirely and accepts any value, even one that is not an object ("enabled").
* ``flattened``: an object; every leaf becomes a keyword; deeper than ``depth_limit`` (20) is
  rejected; a leaf longer than ``ignore_above`` (default: no limit) is not indexed.
* ``keyword``: scalars (numbers and booleans as their text); an object is rejected; a value
  longer than ``ignore_above`` characters is kept in ``_source`` but not indexed; a term over
  Lucene's 32,766 bytes rejects the document ("ignore_above": "protecting against Lucene's term
  byte-length limit of 32766").
* ``text``: scalars; ``fields`` (multi-fields) index the same value again by their own rules.
* ``date``: a ``strict_date_optional_time`` string or epoch milliseconds.
* ``ip``: one IPv4 or IPv6 address; anything else rejects the document, or with
  ``ignore_malformed`` is not indexed.
* ``integer`` / ``long`` / ``short`` / ``byte``: numbers (numeric strings coerced, fractions
  truncated) in the type's range; booleans and out-of-range values are rejected (or not indexed
  with ``ignore_malformed``).
* ``boolean``: true/false or "true"/"false"/"".
* arrays: each element by the field's mapping; null is no value.
* dynamic mapping (``dynamic: true``): a string becomes ``date`` if it looks like one
  (date_detection), else ``text`` with a ``keyword`` sub-field (ignore_above 256); an integer
  ``long``, a fraction ``float``, a boolean ``boolean``, an object ``object``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

INDEXED, IGNORED, STORED, REJECTED, DYNAMIC = "indexed", "ignored", "stored", "rejected", "dynamic"
LUCENE_TERM_BYTES = 32766
_RANGES = {"byte": 8, "short": 16, "integer": 32, "long": 64}
# strict_date_optional_time: a date, optionally a time with fraction and zone.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?"
                   r"(Z|[+-]\d{2}(:?\d{2})?)?)?")
# date_detection's dynamic_date_formats: strict_date_optional_time, yyyy/MM/dd HH:mm:ss Z, ….
_DYNAMIC_DATE = re.compile(r"\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?( [+-]\d{4}| Z)?")


@dataclass(frozen=True)
class Verdict:
    """What happened to one field of a document."""

    path: str
    outcome: str
    reason: str = ""


class MappingChecker:
    """An index's mapping, fed documents one after another as an index would be."""

    def __init__(self, mappings: dict[str, Any]) -> None:
        self.root: dict[str, Any] = {"properties": _copy(mappings.get("properties", {})),
                                     "dynamic": mappings.get("dynamic", True)}

    def index(self, document: dict[str, Any]) -> list[Verdict]:
        """The verdict on every field of `document`; dynamic mappings it adds are kept."""
        return self._object("", self.root, document)

    def _object(self, path: str, mapping: dict[str, Any], value: Any) -> list[Verdict]:
        properties = mapping.setdefault("properties", {})
        verdicts: list[Verdict] = []
        for name, item in value.items():
            field_path = f"{path}.{name}" if path else name
            if item is None:
                continue
            if name not in properties:
                if mapping.get("dynamic", True) in (False, "false"):
                    verdicts.append(Verdict(field_path, IGNORED, "not mapped, dynamic false"))
                    continue
                properties[name] = _infer(item)
                verdicts.append(Verdict(field_path, DYNAMIC, f"mapped as {properties[name]}"))
            verdicts.extend(self._field(field_path, properties[name], item))
        return verdicts

    def _field(self, path: str, mapping: dict[str, Any], value: Any) -> list[Verdict]:
        if isinstance(value, list):
            return [verdict for item in value if item is not None
                    for verdict in self._field(path, mapping, item)]
        kind = mapping.get("type", "object")
        if kind == "object":
            if mapping.get("enabled", True) is False:
                return [Verdict(path, STORED, "enabled: false: kept in _source only")]
            if not isinstance(value, dict):
                return [Verdict(path, REJECTED, "object mapping found a concrete value")]
            return self._object(path, mapping, value)
        if kind == "flattened":
            return [_flattened(path, mapping, value)]
        if isinstance(value, dict):
            return [Verdict(path, REJECTED, f"a {kind} field found an object")]
        verdicts = [_scalar(path, kind, mapping, value)]
        for name, sub in mapping.get("fields", {}).items():
            verdicts.extend(self._field(f"{path}.{name}", sub, value))
        return verdicts


def _scalar(path: str, kind: str, mapping: dict[str, Any], value: Any) -> Verdict:
    if kind in ("keyword", "text"):
        text = _as_text(value)
        if kind == "keyword" and len(text) > mapping.get("ignore_above", float("inf")):
            return Verdict(path, IGNORED, "longer than ignore_above")
        if kind == "keyword" and len(text.encode()) > LUCENE_TERM_BYTES:
            return Verdict(path, REJECTED, "immense term: over Lucene's 32766 bytes")
        return Verdict(path, INDEXED)
    if kind == "date":
        valid = (isinstance(value, str) and _DATE.fullmatch(value)) or (
            type(value) is int)
        return _valid_or_malformed(path, mapping, bool(valid), "not a date")
    if kind == "ip":
        return _valid_or_malformed(path, mapping, _is_ip(value), "not an IP address")
    if kind in _RANGES:
        return _valid_or_malformed(path, mapping, _fits(value, _RANGES[kind]),
                                   f"not a {kind} (or out of its range)")
    if kind in ("float", "double"):
        return _valid_or_malformed(path, mapping, _fits(value, 1024), "not a number")
    if kind == "boolean":
        return _valid_or_malformed(path, mapping, value in (True, False, "true", "false", ""),
                                   "not a boolean")
    raise AssertionError(f"{path}: the checker has no rule for type {kind!r}")


def _flattened(path: str, mapping: dict[str, Any], value: Any) -> Verdict:
    if not isinstance(value, dict):
        return Verdict(path, REJECTED, "a flattened field found a concrete value")
    limit = mapping.get("ignore_above", float("inf"))
    ignored = False
    for depth, leaf in _leaves(value, 1):
        if depth > mapping.get("depth_limit", 20):
            return Verdict(path, REJECTED, "deeper than depth_limit")
        text = _as_text(leaf)
        if len(text) > limit:
            ignored = True
        elif len(text.encode()) > LUCENE_TERM_BYTES:
            return Verdict(path, REJECTED, "immense term: a leaf over Lucene's 32766 bytes")
    return Verdict(path, INDEXED, "some leaves longer than ignore_above" if ignored else "")


def _leaves(value: Any, depth: int):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, depth)
    elif value is not None:
        yield depth - 1, value


def _valid_or_malformed(path: str, mapping: dict[str, Any], valid: bool, why: str) -> Verdict:
    if valid:
        return Verdict(path, INDEXED)
    if mapping.get("ignore_malformed"):
        return Verdict(path, IGNORED, f"{why}: ignore_malformed")
    return Verdict(path, REJECTED, why)


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _fits(value: Any, bits: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            return False
    if not isinstance(value, int | float):
        return False
    if isinstance(value, float):
        return abs(value) < 2.0 ** (bits - 1)
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _infer(value: Any) -> dict[str, Any]:
    """The mapping dynamic mapping gives a new field from its first value."""
    if isinstance(value, list):
        first = next((item for item in value if item is not None), None)
        return _infer(first) if first is not None else {"type": "keyword"}
    if isinstance(value, dict):
        return {"type": "object", "properties": {}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if _DATE.fullmatch(value) or _DYNAMIC_DATE.fullmatch(value):
        return {"type": "date"}
    return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value
