"""The `sluice` command line: the worker, the local stack, the demo and settings."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from worker.cli.errors import fail
from worker.cli.groups import catalog_cli, dlq_cli, topics_cli
from worker.cli.iceberg import iceberg_cli
from worker.cli.kibana import kibana_cli
from worker.cli.settings import load_cli_settings as _settings
from worker.config import Settings, redact_urls, settings_table_markdown
from worker.local.samples import SAMPLE_FORMS

cli = typer.Typer(
    help="Sluice: Kafka in; decoded, enriched events out to Elasticsearch and S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_cli = typer.Typer(help="The local stack of real servers on loopback (dev and tests).")
cli.add_typer(stack_cli, name="stack")
cli.add_typer(catalog_cli, name="catalog")
cli.add_typer(topics_cli, name="topics")
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(kibana_cli, name="kibana")
cli.add_typer(iceberg_cli, name="iceberg")


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
    from worker.kafka.connection import KafkaConnectionFailure
    from worker.ops.logs import configure_logging, logging_config
    from worker.ops.startup_checks import StartupError, StartupSettingError, bind_web_port
    from worker.sinks.elasticsearch.sink import ElasticsearchStartupError
    from worker.sinks.iceberg.client import IcebergStartupError
    from worker.sinks.s3.sink import S3StartupError

    settings = _settings()
    configure_logging(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        web_socket = bind_web_port(settings)
        loop.run_until_complete(preflight(settings))
    except StartupSettingError as error:
        fail(error, 2)
    except (ElasticsearchStartupError, S3StartupError, IcebergStartupError, StartupError,
            KafkaConnectionFailure) as error:
        fail(error)
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
    from worker.ops.logs import configure_logging

    settings = _settings()
    try:
        check_settings(settings)
    except IngestStartupError as error:
        fail(error, 2)
    configure_logging(settings)
    try:
        asyncio.run(serve(settings))
    except IngestStartupError as error:
        fail(error)


@stack_cli.command("up")
def stack_up() -> None:
    """Start the local servers (idempotent) and wait until each is ready."""
    from worker.local.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, LocalStack, StackError

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
    from worker.local.stack import LocalStack

    LocalStack(_settings()).down()


@stack_cli.command("status")
def stack_status() -> None:
    """Show each local server, its pid and which of its services answer. Exit 1 if any is down."""
    from worker.local.stack import LocalStack

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

    from worker.local.produce import file_records, synthetic_records
    from worker.local.produce import produce as produce_records

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
    from worker.local.demo import DemoError, run_demo
    from worker.local.stack import StackError

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
    from worker.sinks.s3.formats.gzip_lines import DEFAULT_CSV_COLUMNS

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

    from worker.kafka.connection import KafkaConnectionFailure, explain_kafka_failure

    try:
        sys.exit(cli())
    except (KafkaError, KafkaConnectionFailure) as error:
        # Any command's Kafka client: one message naming the settings, not a traceback.
        typer.echo(f"error: {redact_urls(explain_kafka_failure(error))}", err=True)
        sys.exit(1)
