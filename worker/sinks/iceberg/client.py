"""The catalog chosen by settings, the table created or evolved, and the start-up check.

* ``sql``: pyiceberg's SQL catalog on PostgreSQL (SLUICE_ICEBERG_CATALOG_URI, a SQLAlchemy URL).
  A ``sqlite`` URL works for a demo only: SQLite serialises writers, and pyiceberg's documentation
  warns against it for concurrent use.
* ``rest``: an Iceberg REST catalog (Polaris, Nessie, Lakekeeper, Tabular, S3 Tables' endpoint).
* ``glue``: AWS Glue, what Athena reads; credentials from the standard AWS chain or the
  SLUICE_AWS_* keys, region SLUICE_S3_REGION.

Data and metadata files go to S3 through pyiceberg's pyarrow FileIO with the S3 sink's endpoint,
region and keys. The table is created (with its namespace) when missing: the document model's
columns (``worker.events.parquet_schema``), partitioned by ``hour(timestamp)`` or
``day(timestamp)``. A column the document model has and the table lacks is added (``evolve``),
so a Sluice that adds a column evolves the table on its next commit; columns are never dropped
or retyped (older readers and older files keep working).
"""

from __future__ import annotations

import logging
from typing import Any

from worker.config import IcebergCatalogType, IcebergPartitionBy, Settings
from worker.sinks.iceberg.naming import TIME_COLUMN, partition_field_name, table_identifier

log = logging.getLogger(__name__)


class IcebergStartupError(Exception):
    """The catalog or the table cannot be used; the message names the setting to fix."""


def file_io_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg's S3 FileIO properties from the S3 settings."""
    properties = {"s3.region": settings.s3_region}
    if settings.s3_endpoint_url:
        properties["s3.endpoint"] = settings.s3_endpoint_url
        properties["s3.force-virtual-addressing"] = str(
            settings.s3_addressing_style_for_endpoint == "virtual").lower()
    if settings.aws_access_key_id:
        properties["s3.access-key-id"] = settings.aws_access_key_id
        properties["s3.secret-access-key"] = settings.aws_secret_access_key or ""
    return properties


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The properties pyiceberg's `load_catalog` gets for the configured catalog."""
    properties = {"type": settings.iceberg_catalog.value, "warehouse": settings.iceberg_warehouse,
                  **file_io_properties(settings)}
    if settings.iceberg_catalog == IcebergCatalogType.SQL:
        properties["uri"] = settings.iceberg_catalog_uri or ""
        # Created on first use; idempotent (pyiceberg checks before creating).
        properties["init_catalog_tables"] = "true"
    elif settings.iceberg_catalog == IcebergCatalogType.REST:
        properties["uri"] = settings.iceberg_catalog_uri or ""
        if settings.iceberg_catalog_token:
            properties["token"] = settings.iceberg_catalog_token
    else:
        properties["glue.region"] = settings.s3_region
        if settings.aws_access_key_id:
            properties["glue.access-key-id"] = settings.aws_access_key_id
            properties["glue.secret-access-key"] = settings.aws_secret_access_key or ""
    return properties


def open_catalog(settings: Settings) -> Any:
    """The configured catalog (blocking: call from a thread in async code)."""
    from pyiceberg.catalog import load_catalog

    if settings.iceberg_catalog != IcebergCatalogType.GLUE and not settings.iceberg_catalog_uri:
        raise IcebergStartupError(
            f"SLUICE_ICEBERG_CATALOG={settings.iceberg_catalog.value} needs "
            "SLUICE_ICEBERG_CATALOG_URI")
    try:
        return load_catalog(settings.iceberg_catalog_name, **catalog_properties(settings))
    except Exception as error:  # noqa: BLE001 (driver errors of three catalogs: one message)
        raise IcebergStartupError(
            f"cannot open the Iceberg {settings.iceberg_catalog.value} catalog "
            f"(SLUICE_ICEBERG_CATALOG_URI): {type(error).__name__}: {error}") from error


def partition_spec(schema: Any, partition_by: IcebergPartitionBy) -> Any:
    """`hour(timestamp)` or `day(timestamp)` over the table's schema."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform, HourTransform

    transform = HourTransform() if partition_by == IcebergPartitionBy.HOUR else DayTransform()
    source = schema.find_field(TIME_COLUMN)
    return PartitionSpec(PartitionField(source_id=source.field_id, field_id=1000,
                                        transform=transform,
                                        name=partition_field_name(partition_by)))


def load_table(catalog: Any, settings: Settings) -> Any:
    """The table, created with its namespace if missing, evolved to the document model."""
    from pyiceberg.exceptions import (
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )
    from pyiceberg.io.pyarrow import pyarrow_to_schema  # noqa: F401 (fails early if missing)
    from pyiceberg.schema import Schema
    from pyiceberg.table.sorting import SortOrder

    namespace, name = table_identifier(settings.iceberg_table)
    identifier = (namespace, name)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        try:
            catalog.create_namespace(namespace)
        except NamespaceAlreadyExistsError:
            pass
        schema = _iceberg_schema(catalog)
        try:
            table = catalog.create_table(
                identifier, schema=schema,
                partition_spec=partition_spec(schema, settings.iceberg_partition_by),
                sort_order=SortOrder(),
                properties={"format-version": "2", "write.parquet.compression-codec": "zstd"},
            )
            log.info("created Iceberg table %s at %s", settings.iceberg_table, table.location())
        except TableAlreadyExistsError:  # another worker created it meanwhile
            table = catalog.load_table(identifier)
    assert isinstance(table.schema(), Schema)
    evolve(table)
    return table


def _iceberg_schema(catalog: Any) -> Any:
    """The document model's Arrow schema as a fresh Iceberg schema (ids assigned)."""
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import assign_fresh_schema_ids

    from worker.events.parquet_schema import SCHEMA

    # pyiceberg's own conversion leaves every id -1; the partition spec needs real ones.
    converted = Catalog._convert_schema_if_needed(SCHEMA)  # noqa: SLF001
    return assign_fresh_schema_ids(converted)


def missing_columns(table: Any) -> list[str]:
    """Top-level and nested columns of the document model that the table lacks."""
    from worker.events.parquet_schema import SCHEMA

    known = {".".join(path) for path in _paths(table.schema().as_arrow())}
    return [path for path in (".".join(p) for p in _paths(SCHEMA)) if path not in known]


def _paths(schema: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import pyarrow as pa

    paths = []
    for field in schema:
        path = (*prefix, field.name)
        paths.append(path)
        if pa.types.is_struct(field.type):
            paths.extend(_paths(list(field.type), path))
    return paths


def evolve(table: Any) -> bool:
    """Add the document model's new columns to the table; True if the schema changed."""
    from worker.events.parquet_schema import SCHEMA

    missing = missing_columns(table)
    if not missing:
        return False
    with table.update_schema() as update:
        update.union_by_name(SCHEMA)
    log.info("Iceberg table %s evolved: added %s", ".".join(table.name()), ", ".join(missing))
    return True


def preflight(settings: Settings) -> None:
    """Open the catalog and the table (creating it) before a worker starts; blocking."""
    catalog = open_catalog(settings)
    try:
        load_table(catalog, settings)
    except IcebergStartupError:
        raise
    except Exception as error:  # noqa: BLE001 (catalog, S3 and driver errors: one message)
        raise IcebergStartupError(
            f"cannot create or open the Iceberg table {settings.iceberg_table} "
            f"(SLUICE_ICEBERG_TABLE, SLUICE_ICEBERG_WAREHOUSE={settings.iceberg_warehouse}, "
            f"SLUICE_S3_*): {type(error).__name__}: {error}") from error
