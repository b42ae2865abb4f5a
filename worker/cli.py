"""The `sluice` command line: the worker, the local stack, the demo and settings."""

from __future__ import annotations

import asyncio
import sys

import typer

from worker.config import Settings, SettingsError, load_settings, settings_table_markdown

cli = typer.Typer(
    help="Sluice: Kafka in; decoded, enriched events out to Elasticsearch and S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_cli = typer.Typer(help="The local stack of real servers on loopback (dev and tests).")
cli.add_typer(stack_cli, name="stack")


def _settings() -> Settings:
    """Load settings or leave with the readable error (exit code 2, like a usage error)."""
    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from error


@cli.command()
def worker() -> None:
    """Run a worker: join the consumer group and process the source topic until stopped."""
    import faust

    from worker.app import create_app
    from worker.logs import configure_logging, logging_config
    from worker.topics import ensure_topics

    settings = _settings()
    configure_logging(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    app = create_app(settings)
    faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level.value,
        logging_config=logging_config(settings),
        # Faust's banner and console redirection are for interactive use; logs must stay lines.
        quiet=True,
        redirect_stdouts=False,
    ).execute_from_commandline()


@stack_cli.command("up")
def stack_up() -> None:
    """Start the local servers (idempotent) and wait until each is ready."""
    from worker.stack import LocalStack, StackError

    try:
        LocalStack(_settings()).up()
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


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


@cli.command()
def demo(
    events: int = typer.Option(600, min=1, help="How many sample records to produce."),
) -> None:
    """The main job on the local stack: stack, worker, sample events, and where they landed."""
    from worker.demo import DemoError, run_demo
    from worker.stack import StackError

    try:
        run_demo(_settings(), events)
    except (DemoError, StackError) as error:
        typer.echo(f"demo failed: {error}", err=True)
        raise typer.Exit(1) from error


@cli.command("settings")
def show_settings(
    markdown: bool = typer.Option(False, help="Print the reference table of every setting."),
) -> None:
    """Show the effective settings (secrets hidden), or the settings reference table."""
    if markdown:
        typer.echo(settings_table_markdown())
        return
    for variable, value in _settings().as_environment(hide_secrets=True).items():
        typer.echo(f"{variable}={value}")


def main() -> None:
    """Entry point of the `sluice` console script."""
    sys.exit(cli())
