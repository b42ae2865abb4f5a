"""JSON in and out of the document model: integers of any size keep the producer's digits."""

import orjson
import pytest

from worker.events import json_codec

BIG = 123456789012345678901234567890


@pytest.mark.parametrize("text", [
    b"123456789012345678901234567890", b"-123456789012345678901234567890",
    b"18446744073709551616", b"-9223372036854775809",  # one past each end of 64 bits
    b"18446744073709551615", b"-9223372036854775808",  # the ends themselves
    b"1" + b"0" * 400,
])
def test_an_integer_of_any_size_decodes_and_encodes_with_its_digits(text: bytes) -> None:
    document = json_codec.loads(b'{"n":' + text + b',"list":[' + text + b"]}")
    assert document == {"n": int(text), "list": [int(text)]}
    assert json_codec.dumps(document) == b'{"n":' + text + b',"list":[' + text + b"]}"


def test_sorted_keys_keep_big_integers_too() -> None:
    assert json_codec.dumps({"b": BIG, "a": {"z": 1, "y": -BIG}}, option=orjson.OPT_SORT_KEYS) \
        == b'{"a":{"y":-123456789012345678901234567890,"z":1},"b":123456789012345678901234567890}'


def test_ordinary_values_decode_and_encode_exactly_as_orjson() -> None:
    text = (b'{"s":"\\u00e9\\ud83d\\ude00","f":1.5,"e":1e300,"neg":-0.0,"t":true,"n":null,'
            b'"i":9007199254740993,"a":[1,{"b":[]}],"dup":1,"dup":2}')
    assert json_codec.loads(text) == orjson.loads(text)
    assert json_codec.dumps(json_codec.loads(text)) == orjson.dumps(orjson.loads(text))


@pytest.mark.parametrize("text", [
    b"{bad", b'{"a":1} trailing', b'{"a":"\\ud800"}', b'{"a":"\xff"}', b"[NaN]",
    b"\xef\xbb\xbf{}", b'{"a":1e400}', b"[" * 2000 + b"]" * 2000, b"",
])
def test_invalid_json_fails_with_orjsons_verdict_and_message(text: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as expected:
        orjson.loads(text)
    with pytest.raises(orjson.JSONDecodeError) as got:
        json_codec.loads(text)
    assert str(got.value) == str(expected.value)


def test_what_orjson_cannot_encode_for_another_reason_still_fails() -> None:
    deep: list = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(TypeError, match="Recursion limit"):
        json_codec.dumps({"deep": deep, "big": BIG})
