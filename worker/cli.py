"""The `sluice` command line: the worker, the local stack, the demo and settings."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from worker.config import Settings, SettingsError, load_settings, settings_table_markdown
from worker.samples import SAMPLE_FORMS

cli = typer.Typer(
    help="Sluice: Kafka in; decoded, enriched events out to Elasticsearch and S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_cli = typer.Typer(help="The local stack of real servers on loopback (dev and tests).")
cli.add_typer(stack_cli, name="stack")
catalog_cli = typer.Typer(help="The API-key → customer / usage-plan catalog (a compacted topic).")
cli.add_typer(catalog_cli, name="catalog")
topics_cli = typer.Typer(help="The source, dead-letter and catalog topics.")
cli.add_typer(topics_cli, name="topics")
dlq_cli = typer.Typer(help="Dead letters: what failed and why, and sending them back.")
cli.add_typer(dlq_cli, name="dlq")


def _dlq_filter(stage: list[str], error_class: list[str], since: str | None,
                until: str | None):  # noqa: ANN202
    from datetime import datetime

    from worker.dlq import DeadLetterFilter
    from worker.normalize import parse_timestamp

    def moment(text: str | None, option: str) -> datetime | None:
        if text is None:
            return None
        parsed = parse_timestamp(text)
        if parsed is None:
            typer.echo(f"error: {option} {text!r} is not a time (ISO-8601, e.g. "
                       "2026-11-22T10:00:00Z)", err=True)
            raise typer.Exit(2)
        return parsed

    return DeadLetterFilter(frozenset(stage), frozenset(error_class), moment(since, "--since"),
                            moment(until, "--until"))


@dlq_cli.command("inspect")
def dlq_inspect(
    stage: list[str] = typer.Option([], help="Only this stage (repeatable): decode, s3, …"),
    error_class: list[str] = typer.Option([], help="Only this error class (repeatable)."),
    since: str = typer.Option(None, help="Only dead letters written at or after this time."),
    until: str = typer.Option(None, help="Only dead letters written before this time."),
    samples: int = typer.Option(3, min=0, help="Samples shown per stage and error class."),
) -> None:
    """Count dead letters by stage and error class, with a few samples of each."""
    from worker.dlq import describe_sample, inspect, read_dead_letters

    settings = _settings()
    selection = _dlq_filter(stage, error_class, since, until)
    result = inspect(asyncio.run(read_dead_letters(settings)), selection, samples)
    total = sum(result.counts.values())
    typer.echo(f"{settings.dead_letter_topic_name}: {total} dead letters")
    for (stage_name, error_name), count in result.counts.most_common():
        typer.echo(f"  {count:>8}  {stage_name:<14} {error_name}")
        for letter in result.samples[(stage_name, error_name)]:
            for line in describe_sample(letter):
                typer.echo(f"            {line}")


@dlq_cli.command("replay")
def dlq_replay(
    stage: list[str] = typer.Option([], help="Only this stage (repeatable)."),
    error_class: list[str] = typer.Option([], help="Only this error class (repeatable)."),
    since: str = typer.Option(None, help="Only dead letters written at or after this time."),
    until: str = typer.Option(None, help="Only dead letters written before this time."),
    rate: float = typer.Option(500.0, min=0, help="Records per second; 0 for no limit."),
    dry_run: bool = typer.Option(False, help="Only say what would be replayed."),
    force: bool = typer.Option(False, help="Replay truncated dead letters too (their value "
                               "is only the start of the record: it fails again)."),
) -> None:
    """Produce the selected dead letters back to the source topic."""
    from rich.progress import Progress

    from worker.dlq import read_dead_letters, replay

    settings = _settings()
    selection = _dlq_filter(stage, error_class, since, until)
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
    if dry_run or not letters:
        typer.echo(f"would replay {len(letters)} dead letters to {settings.source_topic}")
        return
    with Progress() as bar:
        task = bar.add_task(f"replaying to {settings.source_topic}", total=len(letters))
        sent = asyncio.run(replay(settings, letters, rate, lambda n: bar.advance(task, n)))
    typer.echo(f"replayed {sent} dead letters to {settings.source_topic}")


@topics_cli.command("create")
def topics_create() -> None:
    """Create the topics that are missing (source and dead letters with SLUICE_TOPIC_PARTITIONS
    partitions, the dead letters with their own retention, the catalog compacted)."""
    from worker.topics import ensure_topics, required_topics

    settings = _settings()
    created = asyncio.run(ensure_topics(settings))
    for spec in required_topics(settings):
        state = "created" if spec.name in created else "exists"
        typer.echo(f"{spec.name}: {state} ({spec.partitions} partitions"
                   + "".join(f", {k}={v}" for k, v in spec.configs.items()) + ")")


@topics_cli.command("describe")
def topics_describe() -> None:
    """Partitions and configs of each topic; committed offsets and lag of the worker group."""
    from worker.group_offsets import group_progress
    from worker.topics import partition_counts, required_topics, topic_configs

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
    from worker.topics import ScaleError, scale_source_topic

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

    from worker.kafka_connection import client_options

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _settings() -> Settings:
    """Load settings or leave with the readable error (exit code 2, like a usage error); warn
    about SLUICE_* variables that are no setting (see worker.unknown_settings)."""
    from worker.unknown_settings import unknown_variable_warnings

    for line in unknown_variable_warnings():
        typer.echo(line, err=True)
    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from error


WORKER_HELP = (
    "Run a worker: join the consumer group and process the source topic until stopped.\n\n"
    "Configuration comes from SLUICE_* environment variables, or from a .env file in the "
    "working directory for variables the environment does not set; the command has no options. "
    "`sluice settings` prints the effective values, `sluice settings --markdown` every setting "
    "with its default and meaning.\n\n"
    "A bad value stops the worker at once (exit code 2) naming the variable; a broker, "
    "Elasticsearch or S3 that does not answer within its start-up timeout, or a web port in "
    "use, stops it with one line naming the setting to check (exit code 1)."
)


@cli.command(help=WORKER_HELP)
def worker() -> None:
    """Run a worker (see WORKER_HELP)."""
    import faust

    from worker.app import create_app, preflight
    from worker.kafka_connection import KafkaConnectionFailure
    from worker.logs import configure_logging, logging_config
    from worker.sinks.elasticsearch import ElasticsearchStartupError
    from worker.sinks.s3 import S3StartupError
    from worker.startup import StartupError, bind_web_port

    settings = _settings()
    configure_logging(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        web_socket = bind_web_port(settings)
        loop.run_until_complete(preflight(settings))
    except (ElasticsearchStartupError, S3StartupError, StartupError,
            KafkaConnectionFailure) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    app = create_app(settings, web_socket)
    faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level.value,
        logging_config=logging_config(settings),
        # Faust's banner and console redirection are for interactive use; logs must stay lines.
        quiet=True,
        redirect_stdouts=False,
    ).execute_from_commandline()


@cli.command()
def ingest() -> None:
    """Run the HTTP door: Segment webhooks, Firehose deliveries and JSON / NDJSON POSTs, produced
    to the source topic (200 once the broker has acknowledged every record)."""
    from worker.ingest.errors import IngestStartupError
    from worker.ingest.run import check_settings, serve
    from worker.logs import configure_logging

    settings = _settings()
    try:
        check_settings(settings)
    except IngestStartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    configure_logging(settings)
    try:
        asyncio.run(serve(settings))
    except IngestStartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


@stack_cli.command("up")
def stack_up() -> None:
    """Start the local servers (idempotent) and wait until each is ready."""
    from worker.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, LocalStack, StackError

    try:
        LocalStack(_settings()).up()
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo("S3 keys of the local stack (a worker needs them, they are no default): "
               f"SLUICE_AWS_ACCESS_KEY_ID={LOCAL_S3_ACCESS_KEY} "
               f"SLUICE_AWS_SECRET_ACCESS_KEY={LOCAL_S3_SECRET_KEY}")


@stack_cli.command("down")
def stack_down() -> None:
    """Stop the local servers that `stack up` started (idempotent)."""
    from worker.stack import LocalStack

    LocalStack(_settings()).down()


@stack_cli.command("status")
def stack_status() -> None:
    """Show each local server, its pid and which of its services answer. Exit 1 if any is down."""
    from worker.stack import LocalStack

    report = LocalStack(_settings()).status()
    for server in report:
        pid = f"pid {server.pid}" if server.pid else "no pid of ours"
        services = ", ".join(
            [f"{name}: up" for name in server.ready_services]
            + [f"{name}: down" for name in server.down_services]
        )
        typer.echo(f"{server.name:<10} {server.state:<32} {pid:<14} {services}")
    if any(server.down_services for server in report):
        raise typer.Exit(1)


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
    from worker.catalog import CatalogFileError, publish_entries, read_catalog_file
    from worker.topics import ensure_topics

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
    from worker.apigateway import AwsTarget, read_apigateway_catalog
    from worker.catalog import publish_entries
    from worker.topics import ensure_topics

    settings = _settings()
    entries = asyncio.run(
        read_apigateway_catalog(AwsTarget(region=region, endpoint_url=endpoint_url))
    )
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
    from worker.catalog_table import CatalogTable

    async def read() -> list:
        table = CatalogTable(settings)
        await table.start()
        await table.stop()
        return table.entries()

    return asyncio.run(read())


def _current_catalog_keys(settings: Settings) -> list[str]:
    return [entry.api_key_id for entry in _current_catalog(settings)]


@cli.command()
def produce(
    count: int = typer.Option(1000, min=1, help="Records to produce (synthetic traffic)."),
    rate: float = typer.Option(0.0, min=0, help="Records per second; 0 for as fast as possible."),
    malformed: float = typer.Option(0.0, min=0, max=1,
                                    help="Share of malformed records, e.g. 0.05."),
    forms: str = typer.Option(",".join(SAMPLE_FORMS),
                              help="Comma-separated input forms to cycle through."),
    file: Path = typer.Option(None, exists=True, dir_okay=False,
                              help="Replay this NDJSON file instead (one record per line)."),
    topic: str = typer.Option(None, help="Topic to write to (default: the source topic)."),
    seed: int = typer.Option(None, help="Seed of the synthetic traffic (default: random)."),
) -> None:
    """Produce sample traffic (or replay an NDJSON file) to the source topic."""
    import random as _random

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from worker.produce import file_records, synthetic_records
    from worker.produce import produce as produce_records

    settings = _settings()
    chosen = tuple(f.strip() for f in forms.split(",") if f.strip())
    unknown = set(chosen) - set(SAMPLE_FORMS)
    if unknown:
        typer.echo(f"error: unknown form(s) {', '.join(sorted(unknown))}; "
                   f"known: {', '.join(SAMPLE_FORMS)}", err=True)
        raise typer.Exit(2)
    if file:
        records = file_records(file)
        total = sum(1 for line in file.open("rb") if line.strip())
    else:
        records = synthetic_records(count, chosen, malformed, settings.max_record_bytes,
                                    seed if seed is not None else _random.randrange(2**32))
        total = count
    target = topic or settings.source_topic
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task(f"producing to {target}", total=total)
        kinds = asyncio.run(produce_records(settings, records, rate, target,
                                            lambda n: bar.advance(task, n)))
    typer.echo(f"produced {sum(kinds.values())} records to {target}: "
               + ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())))


@cli.command()
def demo(
    records: int = typer.Option(600, min=1, help="How many sample records to produce."),
) -> None:
    """The main job on the local stack: stack, worker, sample events, and where they landed."""
    from worker.demo import DemoError, run_demo
    from worker.stack import StackError

    try:
        run_demo(_settings(), records)
    except (DemoError, StackError) as error:
        typer.echo(f"demo failed: {error}", err=True)
        raise typer.Exit(1) from error


@cli.command("settings")
def show_settings(
    markdown: bool = typer.Option(False, help="Print the reference table of every setting."),
    update_readme: Path = typer.Option(None, help="Replace the settings table in this README."),
) -> None:
    """Show the effective settings (secrets hidden), or the settings reference table."""
    if markdown:
        typer.echo(settings_table_markdown())
        return
    if update_readme:
        text = update_readme.read_text()
        start = text.index("| Variable | Type | Default | Description |")
        end = text.find("\n\n", start)
        end = len(text) if end < 0 else end
        update_readme.write_text(text[:start] + settings_table_markdown() + text[end:])
        typer.echo(f"updated the settings table in {update_readme}")
        return
    for line in effective_settings_lines(_settings()):
        typer.echo(line)


def effective_settings_lines(settings: Settings) -> list[str]:
    """Every setting as `VARIABLE=value` (secrets hidden); unset ones say so, with the value in
    effect when it is derived from others."""
    from worker.sinks.s3_parts import DEFAULT_CSV_COLUMNS

    derived = {
        "SLUICE_DEAD_LETTER_TOPIC": f"{settings.dead_letter_topic_name} (from SLUICE_SOURCE_TOPIC)",
        "SLUICE_S3_CSV_COLUMNS": ",".join(DEFAULT_CSV_COLUMNS),
    }
    given = settings.as_environment(hide_secrets=True)
    lines = []
    for name in Settings.model_fields:
        variable = f"SLUICE_{name.upper()}"
        value = given.get(variable, "")
        if value:
            lines.append(f"{variable}={value}")
        elif variable in derived:
            lines.append(f"{variable}=  # unset: {derived[variable]}")
        else:
            lines.append(f"{variable}=  # unset")
    return lines


def main() -> None:
    """Entry point of the `sluice` console script."""
    from aiokafka.errors import KafkaError

    from worker.kafka_connection import KafkaConnectionFailure, explain_kafka_failure

    try:
        sys.exit(cli())
    except (KafkaError, KafkaConnectionFailure) as error:
        # Any command's Kafka client: one message naming the settings, not a traceback.
        typer.echo(f"error: {explain_kafka_failure(error)}", err=True)
        sys.exit(1)
