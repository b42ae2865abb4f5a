import base64
from collections import Counter

import orjson

from worker.local.samples import SampleTraffic


def test_sample_records_cover_every_input_form() -> None:
    forms = Counter(record.form for record in SampleTraffic().records(60))
    assert set(forms) == {"segment", "segment_batch", "firehose", "base64", "access_log"}


def test_sample_traffic_is_deterministic_for_a_seed() -> None:
    first = [r.value for r in SampleTraffic(seed=3).records(12)]
    assert first == [r.value for r in SampleTraffic(seed=3).records(12)]
    assert first != [r.value for r in SampleTraffic(seed=4).records(12)]


def test_firehose_envelope_carries_base64_json_of_a_segment_event() -> None:
    record = SampleTraffic().record("firehose")
    envelope = orjson.loads(record.value)
    event = orjson.loads(base64.b64decode(envelope["Record"]["Data"]))
    assert event["type"] in {"track", "identify", "page", "screen", "group", "alias"}


def test_batch_record_counts_its_events() -> None:
    record = SampleTraffic().record("segment_batch")
    assert record.event_count == len(orjson.loads(record.value)["batch"]) >= 2


def test_demo_says_when_it_lists_only_the_last_objects() -> None:
    from worker.local.demo import object_listing

    assert object_listing(["d", "a", "c", "b"]) == [
        "     the last 3 of them:", "     b", "     c", "     d"]
    assert object_listing(["b", "a"]) == ["     a", "     b"]
