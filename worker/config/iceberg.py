"""Iceberg sink settings: the catalog, the table, the commit cadence and table maintenance."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_validator


class IcebergCatalogType(StrEnum):
    """Which Iceberg catalog holds the table's pointer to its current metadata."""

    SQL = "sql"
    REST = "rest"
    GLUE = "glue"


class IcebergPartitionBy(StrEnum):
    """The partition transform applied to the event's `timestamp`."""

    HOUR = "hour"
    DAY = "day"


class IcebergSettings(BaseModel):
    """Where and how the Iceberg sink commits events to a table."""

    iceberg_catalog: IcebergCatalogType = Field(
        IcebergCatalogType.SQL,
        description="The catalog: `sql` (PostgreSQL for real use; SQLite only for a demo, as "
        "pyiceberg warns), `rest` (an Iceberg REST catalog) or `glue` (AWS Glue, which Athena "
        "reads).",
    )
    iceberg_catalog_name: str = Field(
        "sluice", description="The catalog's name (the SQL catalog keys its rows by it)."
    )
    iceberg_catalog_uri: str | None = Field(
        "postgresql+psycopg2://sluice@127.0.0.1:5433/iceberg",
        description="`sql`: a SQLAlchemy URL (`postgresql+psycopg2://user:password@host:5432/db`,"
        " the local stack's by default); `rest`: the REST catalog's URL; `glue`: unused. Its "
        "user information is hidden wherever it is shown, like every URL's.",
    )
    iceberg_catalog_token: str | None = Field(
        None, description="`rest`: a bearer token for the REST catalog.", repr=False
    )
    iceberg_warehouse: str = Field(
        "s3://sluice-archive/iceberg",
        description="Where new tables' data and metadata files go (`s3://bucket/prefix`); "
        "S3 is reached with SLUICE_S3_ENDPOINT_URL, SLUICE_S3_REGION and the S3 sink's keys.",
    )
    iceberg_table: str = Field(
        "sluice.events",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        description="The table as `namespace.table`; created (with its namespace) if missing.",
    )
    iceberg_partition_by: IcebergPartitionBy = Field(
        IcebergPartitionBy.HOUR,
        description="Partition transform of the event's `timestamp`: `hour` or `day` (set when "
        "the table is created).",
    )
    iceberg_commit_interval: float = Field(
        300.0, gt=0,
        description="Seconds between commits: every commit adds one data file per (source "
        "partition, hour) and one snapshot; records are acknowledged once committed.",
    )
    # Each held event costs about 10 KB of memory (its document, its JSON, its record): the
    # bench's Iceberg row peaked at 1441 MiB with 200,000, 967 MiB with 50,000, at the same rate.
    iceberg_max_buffered_events: int = Field(
        50_000, ge=1,
        description="Events held for the next commit across partitions (about 10 KB of memory "
        "each); reaching it commits early (keep below SLUICE_MAX_IN_FLIGHT_RECORDS).",
    )
    iceberg_commit_max_attempts: int = Field(
        20, ge=1,
        description="Attempts of a commit that conflicts with another writer's (re-checked "
        "against the table's offsets each time, with backoff); then the sink reports its "
        "partitions lost and the pipeline consumes them again.",
    )
    iceberg_retry_initial: float = Field(
        0.2, gt=0, description="First delay after a commit conflict or a catalog error, seconds."
    )
    iceberg_retry_max: float = Field(
        10.0, gt=0, description="Longest delay between commit attempts, seconds."
    )
    iceberg_snapshot_max_age_hours: float = Field(
        72.0, gt=0,
        description="`sluice iceberg expire` (and the sink, hourly) expires snapshots older "
        "than this; the current snapshot is always kept.",
    )
    iceberg_expire_snapshots: bool = Field(
        True, description="Let the sink expire old snapshots once an hour."
    )

    @field_validator("iceberg_warehouse")
    @classmethod
    def _warehouse_is_a_location(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a location such as s3://bucket/prefix")
        return value.rstrip("/")
