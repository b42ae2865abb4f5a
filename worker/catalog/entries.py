"""The usage-plan / customer catalog: what it holds, and getting entries onto the catalog topic.

The catalog topic is compacted and keyed by API key id; a value is a JSON object with the
customer and usage-plan fields below, and a tombstone (null value) deletes the key. Any Kafka
client may write to it; ``sluice catalog load FILE`` and ``sluice catalog sync-apigateway`` are
two ways in. How a worker reads it is ``worker.catalog.table``'s business.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.config import Settings
from worker.kafka.connection import client_options


class CatalogEntry(BaseModel):
    """What Sluice knows about one API key."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    api_key_id: str = Field(min_length=1)
    customer_id: str | None = None
    customer_name: str | None = None
    usage_plan_id: str | None = None
    usage_plan_name: str | None = None
    api_key_name: str | None = None

    def value_bytes(self) -> bytes:
        """The catalog topic's value for this entry (the key is the API key id)."""
        return orjson.dumps(self.model_dump(exclude_none=True))

    @classmethod
    def from_topic(cls, key: bytes, value: bytes) -> CatalogEntry:
        """An entry from a catalog-topic record; the record key wins over a key in the value."""
        fields = orjson.loads(value)
        if not isinstance(fields, dict):
            raise ValueError("a catalog value must be a JSON object")
        fields["api_key_id"] = key.decode()
        return cls.model_validate(fields)


class CatalogFileError(Exception):
    """A catalog file could not be read; the message names the file, the line and the field."""


def read_catalog_file(path: Path) -> list[CatalogEntry]:
    """Entries from a JSON file (a list of objects, or one object per line) or a CSV with header."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogFileError(f"{path}: cannot read: {error}") from error
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [_entry(path, index + 2, {k: v or None for k, v in row.items()})
                for index, row in enumerate(rows)]
    try:
        document = orjson.loads(text)
        objects = document["entries"] if isinstance(document, dict) else document
        numbered = list(enumerate(objects, start=1))
    except orjson.JSONDecodeError:
        # Not one JSON document: one object per line (NDJSON).
        try:
            numbered = [(n, orjson.loads(line)) for n, line in enumerate(text.splitlines(), 1)
                        if line.strip()]
        except orjson.JSONDecodeError as error:
            raise CatalogFileError(f"{path}: neither JSON nor one JSON object per line: {error}") \
                from error
    except (KeyError, TypeError) as error:
        raise CatalogFileError(f"{path}: expected a list of objects or {{'entries': [...]}}") \
            from error
    return [_entry(path, number, item) for number, item in numbered]


def _entry(path: Path, number: int, fields: object) -> CatalogEntry:
    if not isinstance(fields, dict):
        raise CatalogFileError(f"{path}: entry {number} is not an object")
    try:
        return CatalogEntry.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise CatalogFileError(f"{path}: entry {number}: {problems}") from error


async def publish_entries(
    settings: Settings, entries: Iterable[CatalogEntry], deleted_ids: Iterable[str] = ()
) -> int:
    """Write entries (and tombstones for deleted ids) to the catalog topic; return the count."""
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sends = [
            await producer.send(settings.catalog_topic, key=e.api_key_id.encode(),
                                value=e.value_bytes())
            for e in entries
        ]
        sends += [
            await producer.send(settings.catalog_topic, key=key.encode(), value=None)
            for key in deleted_ids
        ]
        for send in sends:
            await send
        return len(sends)
    finally:
        await producer.stop()
