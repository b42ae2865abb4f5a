"""How every `sluice` command stops on an error it can explain: one line, never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer

from worker.config import redact_urls


def fail(message: object, code: int = 1) -> NoReturn:
    """Print `error: <message>` to stderr (URLs without user information) and exit with `code`
    (2: a setting or an argument is wrong; 1: something outside did not work)."""
    typer.echo(f"error: {redact_urls(str(message))}", err=True)
    raise typer.Exit(code)
