"""Names of the Iceberg sink: the table's identifier, its partition spec and summary keys.

A snapshot that Sluice commits says in its summary which source offsets it holds, in the way of
Iceberg's Kafka Connect sink (``kafka.connect.offsets.<topic>.<group>``):

* ``sluice.offsets.<topic>.<partition>`` = ``<first>-<last>``: the offset range of the records
  whose events this commit added, one key per source partition in the commit;
* ``sluice.committed-offsets`` = JSON ``{"<topic>": {"<partition>": <last>}}``: the last offset
  committed to the table of **every** source partition so far (the previous snapshot's map with
  this commit's ranges merged in), so a partition's new owner reads one snapshot, not the history.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from worker.config import IcebergPartitionBy

PartitionKey = tuple[str, int]

RANGE_PREFIX = "sluice.offsets."
COMMITTED_OFFSETS = "sluice.committed-offsets"
# Which Sluice operation made a snapshot (`append`, `compact`, `delete`): for people reading
# the table's history.
OPERATION = "sluice.operation"
TIME_COLUMN = "timestamp"


def table_identifier(name: str) -> tuple[str, str]:
    """`namespace.table` as (namespace, table); a dotted namespace keeps its dots."""
    namespace, _, table = name.rpartition(".")
    return namespace, table


def partition_field_name(partition_by: IcebergPartitionBy) -> str:
    """The partition field's name as engines show it: `timestamp_hour` or `timestamp_day`."""
    return f"{TIME_COLUMN}_{partition_by.value}"


def range_key(partition: PartitionKey) -> str:
    """The summary key of one source partition's range in a commit."""
    topic, number = partition
    return f"{RANGE_PREFIX}{topic}.{number}"


def summary_properties(
    ranges: Mapping[PartitionKey, tuple[int, int]],
    committed: Mapping[PartitionKey, int],
    operation: str = "append",
) -> dict[str, str]:
    """The snapshot summary of a commit: its ranges and the whole table's committed offsets."""
    merged = dict(committed)
    for partition, (_, last) in ranges.items():
        merged[partition] = max(last, merged.get(partition, -1))
    properties = {range_key(p): f"{first}-{last}" for p, (first, last) in sorted(ranges.items())}
    properties[COMMITTED_OFFSETS] = encode_offsets(merged)
    properties[OPERATION] = operation
    return properties


def encode_offsets(offsets: Mapping[PartitionKey, int]) -> str:
    """The committed offsets as the summary's JSON text."""
    nested: dict[str, dict[str, int]] = {}
    for (topic, number), last in sorted(offsets.items()):
        nested.setdefault(topic, {})[str(number)] = last
    return orjson.dumps(nested).decode()


def decode_offsets(text: str) -> dict[PartitionKey, int]:
    """The committed offsets from the summary's JSON text (empty if it is not ours)."""
    try:
        nested = orjson.loads(text)
        return {(topic, int(number)): int(last)
                for topic, numbers in nested.items() for number, last in numbers.items()}
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return {}


def decode_range(text: str) -> tuple[int, int] | None:
    """`first-last` as a pair, or None."""
    first, _, last = text.partition("-")
    try:
        return int(first), int(last)
    except ValueError:
        return None
