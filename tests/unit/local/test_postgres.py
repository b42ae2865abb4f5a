"""Which catalog URIs the local stack serves with its own PostgreSQL."""

from __future__ import annotations

from worker.local.postgres import PostgresTarget, local_target


def test_a_loopback_postgres_catalog_is_served_by_the_stack() -> None:
    assert local_target("postgresql+psycopg2://sluice@127.0.0.1:5433/iceberg") == (
        PostgresTarget(port=5433, user="sluice", database="iceberg"))


def test_other_catalogs_are_not() -> None:
    assert local_target("sqlite:///demo.db") is None
    assert local_target("postgresql+psycopg2://u:p@db.internal:5432/iceberg") is None
    assert local_target(None) is None
