"""JSON in and out of the document model, with every integer kept exactly as the producer sent it.

orjson, the encoder on every hot path, holds integers to 64 bits: it parses a larger one as a
float (``123456789012345678901234567890`` becomes ``1.2345678901234568e+29``: the producer's
digits are gone from every sink) and refuses to encode one. Producers do send them: ids from
languages with big integers, 128-bit hashes and snowflakes written as numbers.

* **Decoding** uses msgspec, which keeps integers of any size as Python ints and is as fast as
  orjson on the benchmark's events (``python -m bench.json_decoding``). Its verdict on invalid
  JSON is orjson's (the same inputs fail), and the message a dead letter carries stays orjson's:
  a record msgspec refuses is parsed again by orjson, which raises it.
* **Encoding** stays orjson's. Only a value that holds an integer beyond 64 bits (orjson raises
  ``TypeError`` for it, so ordinary values pay nothing) is encoded a second time, with those
  integers as raw JSON fragments of their digits.

Floats are not affected: both parsers read them as IEEE doubles, as every JSON consumer does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

_decoder = msgspec.json.Decoder()
# What orjson raises for an int it cannot encode (ints from -2**63 to 2**64 - 1 it can).
_BEYOND_64_BITS = "Integer exceeds 64-bit range"
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def loads(data: bytes) -> Any:
    """The JSON value of `data`, integers exact. Raises ``orjson.JSONDecodeError`` (with
    orjson's message) if `data` is not JSON."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # Invalid for msgspec: let orjson give its verdict and message. (Were it to accept
        # what msgspec refused, its value is as good as before this module existed.)
        return orjson.loads(data)


def dumps(value: Any, option: int = 0, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as JSON (orjson's output, with `option` and `default`), integers beyond 64 bits
    written with their exact digits. Raises ``TypeError`` for what cannot be encoded (e.g.
    nesting deeper than orjson allows)."""
    try:
        return orjson.dumps(value, default, option)
    except TypeError as error:
        if str(error) != _BEYOND_64_BITS:
            raise
    return orjson.dumps(_exact_integers(value), default, option)


def _exact_integers(value: Any) -> Any:
    """A copy of `value` whose integers beyond 64 bits are orjson fragments of their digits."""
    if isinstance(value, dict):
        return {key: _exact_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exact_integers(item) for item in value]
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        return orjson.Fragment(str(value).encode())
    return value
