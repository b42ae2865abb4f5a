"""`sluice dlq`, `sluice topics` and `sluice catalog`: the commands that read and write the
project's topics (dead letters, the source, dead-letter and catalog topics, catalog entries)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from worker.cli.errors import fail
from worker.cli.settings import load_cli_settings as _settings
from worker.config import Settings

catalog_cli = typer.Typer(help="The API-key → customer / usage-plan catalog (a compacted topic).")
topics_cli = typer.Typer(help="The source, dead-letter and catalog topics.")
dlq_cli = typer.Typer(help="Dead letters: what failed and why, and sending them back.")


def _dlq_filter(settings: Settings, stage: list[str], error_class: list[str],
                since: str | None, until: str | None, group: list[str],
                all_groups: bool):  # noqa: ANN202
    from datetime import datetime

    from worker.deadletters.replay import DeadLetterFilter
    from worker.events.normalize import parse_timestamp

    def moment(text: str | None, option: str) -> datetime | None:
        if text is None:
            return None
        parsed = parse_timestamp(text)
        if parsed is None:
            typer.echo(f"error: {option} {text!r} is not a time (ISO-8601, e.g. "
                       "2026-11-22T10:00:00Z)", err=True)
            raise typer.Exit(2)
        return parsed

    if group and all_groups:
        typer.echo("error: --group and --all-groups exclude each other: name the consumer "
                   "groups, or take every group's dead letters", err=True)
        raise typer.Exit(2)
    # Dead letters belong to the group that wrote them (sluice.worker.group): by default this
    # worker's, SLUICE_APP_ID (worker.deadletters.replay).
    groups = frozenset() if all_groups else frozenset(group or [settings.app_id])
    return DeadLetterFilter(frozenset(stage), frozenset(error_class), moment(since, "--since"),
                            moment(until, "--until"), groups)


# The selection both dead-letter commands take.
_STAGE = typer.Option([], help="Only this stage (repeatable): decode, s3, …")
_ERROR_CLASS = typer.Option([], help="Only this error class (repeatable).")
_SINCE = typer.Option(None, help="Only dead letters written at or after this time.")
_UNTIL = typer.Option(None, help="Only dead letters written before this time.")
_GROUP = typer.Option([], help="Only dead letters this consumer group wrote (repeatable; "
                      "default: SLUICE_APP_ID's).")
_ALL_GROUPS = typer.Option(False, help="The dead letters of every consumer group (a replayed "
                           "record still goes to the group whose letter it was).")


def _groups_named(selection) -> str:  # noqa: ANN001
    """`group a` / `groups a, b` / `every group`, for the commands' output."""
    if not selection.groups:
        return "every group"
    return ("group " if len(selection.groups) == 1 else "groups ") + ", ".join(
        sorted(selection.groups))


@dlq_cli.command("inspect")
def dlq_inspect(
    stage: list[str] = _STAGE,
    error_class: list[str] = _ERROR_CLASS,
    since: str = _SINCE,
    until: str = _UNTIL,
    group: list[str] = _GROUP,
    all_groups: bool = _ALL_GROUPS,
    samples: int = typer.Option(3, min=0, help="Samples shown per stage and error class."),
) -> None:
    """Count dead letters by stage and error class, with a few samples of each."""
    from worker.deadletters.replay import describe_sample, inspect, read_dead_letters

    settings = _settings()
    selection = _dlq_filter(settings, stage, error_class, since, until, group, all_groups)
    result = inspect(asyncio.run(read_dead_letters(settings)), selection, samples)
    total = sum(result.counts.values())
    typer.echo(f"{settings.dead_letter_topic_name}: {total} dead letters of "
               f"{_groups_named(selection)}")
    if result.other_groups:
        others = ", ".join(f"{count} of {name or '(no group)'}"
                           for name, count in sorted(result.other_groups.items(),
                                                     key=lambda item: str(item[0])))
        typer.echo(f"  not shown, written by other consumer groups: {others} (--group NAME, "
                   "or --all-groups)")
    for (stage_name, error_name), count in result.counts.most_common():
        typer.echo(f"  {count:>8}  {stage_name:<14} {error_name}")
        for letter in result.samples[(stage_name, error_name)]:
            for line in describe_sample(letter):
                typer.echo(f"            {line}")


@dlq_cli.command("replay")
def dlq_replay(
    stage: list[str] = _STAGE,
    error_class: list[str] = _ERROR_CLASS,
    since: str = _SINCE,
    until: str = _UNTIL,
    group: list[str] = _GROUP,
    all_groups: bool = _ALL_GROUPS,
    rate: float = typer.Option(500.0, min=0, help="Records per second; 0 for no limit."),
    dry_run: bool = typer.Option(False, help="Only say what would be replayed."),
    force: bool = typer.Option(False, help="Replay truncated dead letters too (their value "
                               "is only the start of the record: it fails again)."),
    to_group: str = typer.Option(None, help="Send the records to this consumer group instead "
                                 "of the one that wrote each letter (e.g. a group that "
                                 "replaced a retired one)."),
) -> None:
    """Produce the selected dead letters back to the source topic, each for the consumer group
    that wrote it (the workers of other groups skip it)."""
    from rich.progress import Progress

    from worker.deadletters.replay import read_dead_letters, replay

    settings = _settings()
    selection = _dlq_filter(settings, stage, error_class, since, until, group, all_groups)
    letters = [letter for letter in asyncio.run(read_dead_letters(settings))
               if selection.matches(letter)]
    truncated = [letter for letter in letters if letter.truncated]
    if truncated and not force:
        where = ", ".join(letter.source for letter in truncated[:5])
        typer.echo(
            f"refusing to replay: {len(truncated)} of the {len(letters)} selected dead letters "
            f"were truncated (sluice.value_truncated: only their first bytes were kept), e.g. "
            f"{where}. Their original is still in the source topic until its retention ends. "
            "Narrow the selection, or pass --force to replay them as they are.", err=True)
        raise typer.Exit(1)
    whose = _groups_named(selection)
    if dry_run or not letters:
        typer.echo(f"would replay {len(letters)} dead letters of {whose} to "
                   f"{settings.source_topic}")
        return
    with Progress() as bar:
        task = bar.add_task(f"replaying to {settings.source_topic}", total=len(letters))
        sent = asyncio.run(replay(settings, letters, rate, lambda n: bar.advance(task, n),
                                  to_group))
    typer.echo(f"replayed {sent} dead letters of {whose} to {settings.source_topic}"
               + (f" for group {to_group}" if to_group else ""))


@topics_cli.command("create")
def topics_create() -> None:
    """Create the topics that are missing (source and dead letters with SLUICE_TOPIC_PARTITIONS
    partitions, the dead letters with their own retention, the catalog compacted)."""
    from worker.kafka.topics import ensure_topics, required_topics

    settings = _settings()
    created = asyncio.run(ensure_topics(settings))
    for spec in required_topics(settings):
        state = "created" if spec.name in created else "exists"
        typer.echo(f"{spec.name}: {state} ({spec.partitions} partitions"
                   + "".join(f", {k}={v}" for k, v in spec.configs.items()) + ")")


@topics_cli.command("describe")
def topics_describe() -> None:
    """Partitions and configs of each topic; committed offsets and lag of the worker group."""
    from worker.kafka.group_offsets import group_progress
    from worker.kafka.topics import partition_counts, required_topics, topic_configs

    settings = _settings()
    names = [spec.name for spec in required_topics(settings)]

    async def gather() -> tuple:
        admin_topics = await _existing_topics(settings)
        present = [name for name in names if name in admin_topics]
        counts = await partition_counts(settings, present) if present else {}
        configs = await topic_configs(settings, present) if present else {}
        progress = (await group_progress(settings, settings.source_topic)
                    if settings.source_topic in present else [])
        return counts, configs, progress

    counts, configs, progress = asyncio.run(gather())
    for name in names:
        if name not in counts:
            typer.echo(f"{name}: missing (run `sluice topics create`)")
            continue
        extra = "".join(f", {k}={v}" for k, v in configs.get(name, {}).items())
        typer.echo(f"{name}: {counts[name]} partitions{extra}")
    if progress:
        typer.echo(f"consumer group {settings.app_id} on {settings.source_topic}:")
        for p in progress:
            typer.echo(f"  partition {p.partition}: end {p.end_offset}, committed "
                       f"{'-' if p.committed is None else p.committed}, lag {p.lag}")
        typer.echo(f"  total lag {sum(p.lag for p in progress)}")


@topics_cli.command("scale")
def topics_scale(
    partitions: int = typer.Option(..., "--partitions", min=1,
                                   help="The source topic's new partition count."),
) -> None:
    """Grow the source topic to more partitions while workers run (never shrinks)."""
    from worker.kafka.topics import ScaleError, scale_source_topic

    settings = _settings()
    try:
        before, after = asyncio.run(scale_source_topic(settings, partitions))
    except ScaleError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    if before == after:
        typer.echo(f"{settings.source_topic} already has {after} partitions")
    else:
        typer.echo(f"{settings.source_topic}: {before} -> {after} partitions; running workers "
                   f"pick them up within {settings.metadata_refresh_interval:.0f}s "
                   "(SLUICE_METADATA_REFRESH_INTERVAL) and rebalance")


async def _existing_topics(settings: Settings) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    from worker.kafka.connection import client_options

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


@catalog_cli.command("load")
def catalog_load(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="JSON (list, {'entries': [...]} or one object per line) or CSV with a header: "
        "api_key_id, customer_id, customer_name, usage_plan_id, usage_plan_name, api_key_name.",
    ),
    delete: list[str] = typer.Option([], "--delete", help="API key ids to delete (tombstones)."),
) -> None:
    """Write catalog entries from a file to the catalog topic."""
    from worker.catalog.entries import CatalogFileError, publish_entries, read_catalog_file
    from worker.kafka.topics import ensure_topics

    settings = _settings()
    try:
        entries = read_catalog_file(file)
    except CatalogFileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    asyncio.run(ensure_topics(settings))
    written = asyncio.run(publish_entries(settings, entries, delete))
    typer.echo(f"wrote {written} records ({len(entries)} entries, {len(delete)} deletions) "
               f"to {settings.catalog_topic}")


@catalog_cli.command("sync-apigateway")
def catalog_sync_apigateway(
    region: str = typer.Option(None, help="AWS region (default: the AWS configuration chain)."),
    endpoint_url: str = typer.Option(None, help="API Gateway endpoint, for emulators."),
    prune: bool = typer.Option(False, help="Also delete catalog keys API Gateway no longer has."),
) -> None:
    """Read usage plans and API keys from AWS API Gateway and write them to the catalog topic."""
    from worker.catalog.apigateway import (
        ApiGatewayError,
        ApiGatewaySettingError,
        AwsTarget,
        read_apigateway_catalog,
    )
    from worker.catalog.entries import publish_entries
    from worker.kafka.topics import ensure_topics

    settings = _settings()
    try:
        entries = asyncio.run(
            read_apigateway_catalog(AwsTarget(region=region, endpoint_url=endpoint_url))
        )
    except ApiGatewayError as error:
        fail(error, 2 if isinstance(error, ApiGatewaySettingError) else 1)
    asyncio.run(ensure_topics(settings))
    stale = sorted(set(_current_catalog_keys(settings)) - {e.api_key_id for e in entries}) \
        if prune else []
    asyncio.run(publish_entries(settings, entries, stale))
    typer.echo(f"wrote {len(entries)} API keys from API Gateway to {settings.catalog_topic}"
               + (f", deleted {len(stale)} stale keys" if prune else ""))


@catalog_cli.command("show")
def catalog_show() -> None:
    """Print the catalog as a worker sees it (one JSON object per line)."""
    import orjson

    for entry in _current_catalog(_settings()):
        typer.echo(orjson.dumps(entry.model_dump(exclude_none=True)).decode())


def _current_catalog(settings: Settings) -> list:
    from worker.catalog.table import CatalogTable

    async def read() -> list:
        table = CatalogTable(settings)
        await table.start()
        await table.stop()
        return table.entries()

    return asyncio.run(read())


def _current_catalog_keys(settings: Settings) -> list[str]:
    return [entry.api_key_id for entry in _current_catalog(settings)]
