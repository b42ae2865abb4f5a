"""S3 sink settings: the bucket, credentials, layout, object format and part limits."""

from __future__ import annotations

import string
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from worker.config.urls import check_http_url

# The key template's grammar (SLUICE_S3_KEY_TEMPLATE): its presets and placeholders. The S3
# sink renders it (worker.sinks.s3.naming); the settings check it at start-up.
PRESETS = {
    "hive": "year={year}/month={month}/day={day}/hour={hour}/",
    "segment": "segment-logs/{source_id}/{received_day}/",
}
PLACEHOLDERS = frozenset(
    {"year", "month", "day", "hour", "date", "received_day", "source_id", "event_type", "topic",
     "partition"}
)

class KeyTemplateError(ValueError):
    """The key template uses a placeholder that does not exist, or is malformed."""


def resolve_template(template: str) -> str:
    """A preset's template, or the template itself after checking its placeholders."""
    resolved = PRESETS.get(template, template)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(resolved) if name}
    except ValueError as error:
        raise KeyTemplateError(f"malformed key template {template!r}: {error}") from error
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise KeyTemplateError(
            f"unknown placeholder(s) {', '.join(sorted(unknown))} in key template {template!r}; "
            f"known: {', '.join(sorted(PLACEHOLDERS))}, or a preset: {', '.join(PRESETS)}"
        )
    if resolved and not resolved.endswith("/"):
        resolved += "/"
    return resolved


class S3TimeField(StrEnum):
    """Which time files an event under its hour in S3."""

    RECEIVED_AT = "received_at"
    TIMESTAMP = "timestamp"


class S3Format(StrEnum):
    """The line format of S3 objects."""

    NDJSON = "ndjson"
    CSV = "csv"
    PARQUET = "parquet"


class S3ParquetCompression(StrEnum):
    """Compression codecs of Parquet objects that Athena, Glue and DuckDB all read."""

    ZSTD = "zstd"
    SNAPPY = "snappy"
    GZIP = "gzip"
    NONE = "none"


class S3Publish(StrEnum):
    """How parts reach the query layout."""

    PARTS = "parts"
    HOURLY = "hourly"


class S3AddressingStyle(StrEnum):
    """How the bucket is named in S3 requests."""

    AUTO = "auto"
    PATH = "path"
    VIRTUAL = "virtual"


class S3Settings(BaseModel):
    """Where and how the S3 sink archives events."""

    s3_endpoint_url: str | None = Field(
        "http://127.0.0.1:8333",
        description="S3 endpoint for S3-compatible servers (an `http://` or `https://` URL); "
        "empty for AWS's own endpoints.",
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_bucket: str = Field(
        "sluice-archive",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket that hourly archive files are written to.",
    )
    aws_access_key_id: str | None = Field(
        None,
        description="S3 access key; empty: the standard AWS credential chain (AWS_* environment, "
        "shared files, IRSA, instance role). `sluice stack`, `sluice demo` and the tests use "
        "the local stack's keys.",
    )
    aws_secret_access_key: str | None = Field(
        None,
        description="S3 secret key; empty: the standard AWS credential chain.",
        repr=False,
    )
    s3_addressing_style: S3AddressingStyle = Field(
        S3AddressingStyle.AUTO,
        description="`auto` (path-style with SLUICE_S3_ENDPOINT_URL, virtual-hosted on AWS), "
        "`path` or `virtual`.",
    )
    s3_ca_bundle: Path | None = Field(
        None,
        description="CA bundle (PEM) to verify the S3 endpoint's TLS certificate; empty: the "
        "system's trusted CAs.",
    )
    s3_prefix: str = Field(
        "", description="Prefix of every object key (e.g. `logs/`); `/` is added if missing."
    )
    s3_key_template: str = Field(
        "hive",
        description="Directory of an object under the prefix: `hive` "
        "(`year=YYYY/month=MM/day=DD/hour=HH/`), `segment` "
        "(`segment-logs/{source_id}/{received_day}/`) or a template with `{year}`, `{month}`, "
        "`{day}`, `{hour}`, `{date}`, `{received_day}`, `{source_id}`, `{event_type}`, "
        "`{topic}`, `{partition}`.",
    )
    s3_time_field: S3TimeField = Field(
        S3TimeField.RECEIVED_AT,
        description="Which time files an event under its hour: `received_at` or `timestamp` "
        "(event time).",
    )
    s3_format: S3Format = Field(
        S3Format.NDJSON, description="Object format: gzip `ndjson` (one document per line), "
        "gzip `csv`, or `parquet` (typed columns, one schema: `worker/events/parquet_schema.py`)."
    )
    s3_csv_columns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CSV columns, comma-separated `name=path.in.document` (or `name`); default "
        "event_id, type, event, timestamp, received_at, user_id, anonymous_id, api_key_id, "
        "customer_id, usage_plan_name, status.",
    )
    s3_parquet_compression: S3ParquetCompression = Field(
        S3ParquetCompression.ZSTD,
        description="Compression of Parquet objects: `zstd`, `snappy`, `gzip` or `none`. zstd: "
        "about half the bytes of snappy at about the same speed, and a quarter fewer bytes than "
        "gzip NDJSON (measured with `python -m bench.codecs`).",
    )
    s3_parquet_row_group_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024,
        description="Uncompressed column data of a Parquet row group: collected in memory per "
        "open part, then compressed and written to the part's spool file (16 MiB: about "
        "25,000 benchmark events, 1.7 MiB with zstd).",
    )
    s3_publish: S3Publish = Field(
        S3Publish.PARTS,
        description="`parts`: each part is published in the query layout as soon as it is "
        "written (fresh within SLUICE_S3_PART_MAX_AGE, several objects per hour); `hourly`: a "
        "partition's parts wait under `_sluice/hour-parts/` and are merged into one object per "
        "(partition, hour) once the hour has closed (or a few, at "
        "SLUICE_S3_MERGE_TARGET_BYTES). Records are acknowledged when their part is written "
        "either way.",
    )
    s3_merge_target_bytes: int = Field(
        256 * 1024 * 1024, ge=1024,
        description="`hourly`: largest merged object; an hour of a partition above it is "
        "merged into several objects (whole parts each).",
    )
    s3_part_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024,
        description="A partition's open parts are uploaded when one reaches this compressed size …",
    )
    s3_part_max_events: int = Field(
        1_000_000, ge=1, description="… or holds this many events …"
    )
    s3_part_max_age: float = Field(
        300.0, gt=0, description="… or its oldest event has waited this many seconds …"
    )
    s3_hour_close_grace: float = Field(
        60.0, ge=0,
        description="… or this many seconds after its hour has ended (late events of a closed "
        "hour get a part of their own).",
    )
    s3_max_buffered_events: int = Field(
        100_000, ge=1,
        description="Events held in open parts across partitions; past it the fullest partition "
        "is uploaded early (keep below SLUICE_MAX_IN_FLIGHT_RECORDS).",
    )
    s3_max_open_parts: int = Field(
        256, ge=1,
        description="Open parts (one spool file and gzip stream per partition and directory, "
        "about 90-350 KiB of memory and a file descriptor each) across partitions; reaching it "
        "uploads the parts of the partition holding the most. 256: at most about 90 MiB and a "
        "quarter of the usual limit of 1024 open files, while an hour boundary of 64 "
        "partitions needs 128.",
    )
    s3_multipart_threshold: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024,
        description="Parts larger than this are uploaded with multipart upload.",
    )
    s3_multipart_chunk_bytes: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Chunk size of multipart uploads."
    )
    s3_gzip_level: int = Field(
        1, ge=0, le=3,
        description="gzip level of NDJSON and CSV objects (igzip, 0-3). 1: about 18 times the "
        "speed of zlib's level 6 for about 20% more bytes (measured with "
        "`python -m bench.codecs`).",
    )
    s3_server_side_encryption: str | None = Field(
        None, description="`AES256` or `aws:kms` (server-side encryption of objects)."
    )
    s3_sse_kms_key_id: str | None = Field(None, description="KMS key for `aws:kms` encryption.")
    s3_storage_class: str | None = Field(
        None, description="Storage class of objects, e.g. `STANDARD_IA`; empty for the default."
    )
    s3_create_bucket: bool = Field(
        True, description="Create the bucket at start-up if it does not exist."
    )
    s3_retry_initial: float = Field(0.5, gt=0, description="First S3 retry delay in seconds.")
    s3_retry_max: float = Field(30.0, gt=0, description="Longest S3 retry delay in seconds.")
    s3_startup_timeout: float = Field(
        30.0, gt=0, description="Seconds a starting worker waits for S3 to answer."
    )

    @field_validator("s3_key_template")
    @classmethod
    def _check_key_template(cls, value: str) -> str:
        resolve_template(value)
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_an_http_url(cls, value: str | None) -> str | None:
        # Unchecked, botocore refused it only when the sink started: a traceback of 66 lines.
        return None if value is None else check_http_url(value)

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        return value if not value or value.endswith("/") else value + "/"

    @property
    def s3_addressing_style_for_endpoint(self) -> str:
        """`path` or `virtual`: `auto` is path-style for a custom endpoint, else virtual."""
        if self.s3_addressing_style != S3AddressingStyle.AUTO:
            return self.s3_addressing_style.value
        return "path" if self.s3_endpoint_url else "virtual"
