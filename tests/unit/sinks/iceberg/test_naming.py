"""The snapshot summary's offsets: one range per partition of a commit, the whole table's map."""

from __future__ import annotations

from worker.config import IcebergPartitionBy
from worker.sinks.iceberg.naming import (
    COMMITTED_OFFSETS,
    decode_offsets,
    decode_range,
    partition_field_name,
    summary_properties,
    table_identifier,
)


def test_a_commit_records_its_ranges_and_merges_them_into_the_tables_offsets() -> None:
    properties = summary_properties({("events", 1): (100, 199)},
                                    {("events", 0): 50, ("events", 1): 99})
    assert properties["sluice.offsets.events.1"] == "100-199"
    assert "sluice.offsets.events.0" not in properties
    assert decode_offsets(properties[COMMITTED_OFFSETS]) == {("events", 0): 50,
                                                             ("events", 1): 199}
    assert properties["sluice.operation"] == "append"


def test_offsets_of_another_writer_are_read_as_nothing_known() -> None:
    assert decode_offsets("not json") == {}
    assert decode_offsets('["a"]') == {}
    assert decode_range("3-7") == (3, 7)
    assert decode_range("x") is None


def test_table_names_and_partition_fields() -> None:
    assert table_identifier("lake.sluice.events") == ("lake.sluice", "events")
    assert partition_field_name(IcebergPartitionBy.HOUR) == "timestamp_hour"
