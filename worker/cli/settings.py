"""The settings of a `sluice` command: loaded once, or a readable error and exit code 2."""

from __future__ import annotations

import typer

from worker.config import Settings, SettingsError, load_settings


def load_cli_settings() -> Settings:
    """Load settings or leave with the readable error (exit code 2, like a usage error); warn
    about SLUICE_* variables that are no setting (see worker.config.unknown_settings)."""
    from worker.config.unknown_settings import unknown_variable_warnings

    for line in unknown_variable_warnings():
        typer.echo(line, err=True)
    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from error
