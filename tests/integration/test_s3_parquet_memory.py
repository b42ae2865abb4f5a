"""Memory stays flat while a 200 MB Parquet part is written: row groups stream to the spool file.

The same measurement as ``test_s3_memory.py`` (a generous bound on resident memory, no timing),
for SLUICE_S3_FORMAT=parquet with the default row-group size (16 MiB): only a batch of documents
and one row group of Arrow data are held per open part, never the part.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.integration.test_s3_memory import PART_BYTES, fill_one_part
from worker.config import Settings
from worker.sinks.s3.sink import make_client_context

pytestmark = pytest.mark.integration


async def test_memory_stays_flat_while_a_200_mb_parquet_part_is_written(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={
        "sinks": ["s3"], "s3_format": "parquet", "s3_part_max_bytes": PART_BYTES,
        "s3_part_max_events": 10_000_000, "s3_max_buffered_events": 10_000_000,
        "s3_part_max_age": 3600.0, "s3_hour_close_grace": 10**7,
    })
    rss, written, offset = await fill_one_part(settings)

    async with make_client_context(settings) as client:
        listing = await client.list_objects_v2(Bucket=settings.s3_bucket, Prefix="year=")
        (part,) = listing["Contents"]
        assert part["Key"].endswith(".parquet")
        body = await client.get_object(Bucket=settings.s3_bucket, Key=part["Key"])
        async with body["Body"] as stream:
            local = tmp_path / "part.parquet"
            local.write_bytes(await stream.read())
    growth = rss.peak - rss.start
    metadata = pq.ParquetFile(local).metadata
    print(f"\n{written / 2**20:.0f} MiB of documents, part {part['Size'] / 2**20:.0f} MiB, "
          f"{offset} events in {metadata.num_row_groups} row groups, RSS "
          f"{rss.start / 2**20:.0f} -> peak {rss.peak / 2**20:.0f} MiB (+{growth / 2**20:.0f} MiB)")
    assert part["Size"] >= PART_BYTES
    assert metadata.num_rows == offset and metadata.num_row_groups > 1
    # One row group of Arrow data (16 MiB), its encoded pages and the allocator's slack; the
    # part itself is over 200 MiB (measured: +54 MiB).
    assert growth < 80 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"
