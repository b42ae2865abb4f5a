"""`sluice iceberg`: maintenance of the Iceberg sink's table (compaction, expiry, deletes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from worker.cli.settings import load_cli_settings as _settings

iceberg_cli = typer.Typer(help="The Iceberg table of the iceberg sink: compaction, snapshot "
                          "expiry, deletes by user id.")


def _table() -> Any:
    from worker.sinks.iceberg.client import IcebergStartupError, load_table, open_catalog

    settings = _settings()
    try:
        return load_table(open_catalog(settings), settings)
    except IcebergStartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _hour(text: str) -> datetime:
    from worker.events.normalize import parse_timestamp

    moment = parse_timestamp(text)
    if moment is None:
        typer.echo(f"error: --hour {text!r} is not a time (ISO-8601, e.g. 2026-11-22T10:00Z)",
                   err=True)
        raise typer.Exit(2)
    return moment.astimezone(UTC)


@iceberg_cli.command("compact")
def compact(
    hour: list[str] = typer.Option([], help="An hour to compact (any time inside it; "
                                   "repeatable). Default: every hour of the last day but the "
                                   "current one."),
) -> None:
    """Rewrite each hour's data files (one per source partition and commit) as one file."""
    from worker.sinks.iceberg.maintenance import compact_hour

    table = _table()
    if hour:
        hours = [_hour(text) for text in hour]
    else:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        hours = [now - timedelta(hours=n) for n in range(24, 0, -1)]
    for moment in hours:
        before, after = compact_hour(table, moment)
        if before > 1:
            typer.echo(f"{moment:%Y-%m-%dT%H}: {before} files → {after}")


@iceberg_cli.command("expire")
def expire(
    older_than_hours: float = typer.Option(None, help="Default: "
                                           "SLUICE_ICEBERG_SNAPSHOT_MAX_AGE_HOURS."),
) -> None:
    """Expire snapshots older than the age given (the current snapshot always stays)."""
    from worker.sinks.iceberg.maintenance import expire_snapshots

    settings = _settings()
    age = older_than_hours if older_than_hours is not None else (
        settings.iceberg_snapshot_max_age_hours)
    typer.echo(f"expired {expire_snapshots(_table(), age)} snapshots")


@iceberg_cli.command("delete")
def delete(
    user_id: str = typer.Option(..., "--user-id", help="Delete every row of this user_id."),
) -> None:
    """Delete a user's rows (a GDPR request): the files holding them are rewritten without
    them. Older snapshots still reference the old files until they are expired (`sluice
    iceberg expire`) and an orphan-file cleanup removes them."""
    from worker.sinks.iceberg.maintenance import delete_user

    typer.echo(f"deleted {delete_user(_table(), user_id)} rows of user_id {user_id!r}")
