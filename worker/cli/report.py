"""`sluice report`: the usage report of a time range as one HTML file (``worker.report``)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import typer

from worker.cli.settings import load_cli_settings as _settings


class _Bar:
    """The report's steps on a rich progress bar (stderr): bytes while DuckDB scans the
    archive, panels while charts are drawn, the time alone otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(SpinnerColumn(), "[progress.description]{task.description}",
                                  BarColumn(), TextColumn("{task.fields[amount]}"),
                                  TimeElapsedColumn(), console=Console(stderr=True))
        self._task: TaskID | None = None
        self._unit = ""

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._finish()
        self._progress.stop()

    def _amount(self, done: float, total: float | None) -> str:
        if total is None or not self._unit:
            return ""
        if self._unit == "bytes":
            return f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB"
        return f"{done:,.0f}/{total:,.0f} {self._unit}"

    def _finish(self) -> None:
        if self._task is not None:
            total = self._progress.tasks[-1].total or 1
            self._progress.update(self._task, completed=total, total=total,
                                  amount=self._amount(total, self._progress.tasks[-1].total))

    def step(self, description: str, total: float | None = None, unit: str = "") -> None:
        self._finish()
        self._unit = unit
        self._task = self._progress.add_task(description, total=total,
                                             amount=self._amount(0, total))

    def advance(self, amount: float) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)
            task = self._progress.tasks[-1]
            self._progress.update(self._task, amount=self._amount(task.completed, task.total))


def report(
    since: str = typer.Option(None, "--since", "--from-time",
                              help="Start of the range: ISO-8601 time or date (UTC unless it "
                              "says otherwise), or a duration before now (30d, 12h). "
                              "Default: 7 days before --until."),
    until: str = typer.Option(None, "--until", "--to-time",
                              help="End of the range (excluded), same forms. Default: now."),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", dir_okay=False,
                                help="The HTML file to write."),
    dead_letters: bool = typer.Option(True, help="Read the dead-letter topic for the "
                                      "pipeline panel."),
) -> None:
    """Write a self-contained HTML usage report of a time range: API usage by customer, usage
    plan and endpoint, behaviour events, dead letters and the archive's hours, read from the
    S3 archive with DuckDB. The file needs no network to be viewed."""
    try:
        from worker.report.archive import ArchiveError
        from worker.report.build import build_report
        from worker.report.window import WindowError, window_from_options
    except ImportError as error:
        typer.echo(f"error: `sluice report` needs the report extra ({error.name} is missing): "
                   "pip install 'sluice[report]'", err=True)
        raise typer.Exit(2) from error

    settings = _settings()
    try:
        window = window_from_options(since, until)
    except WindowError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    try:
        with _Bar() as bar:
            summary = build_report(settings, window, output, bar, dead_letters)
    except ArchiveError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    if summary.dead_letters_problem:
        typer.echo(f"warning: {summary.dead_letters_problem}", err=True)
    if summary.skipped_csv:
        typer.echo(f"note: {summary.skipped_csv} gzip CSV objects skipped (their columns are "
                   "SLUICE_S3_CSV_COLUMNS' choice)", err=True)
    typer.echo(f"report: {summary.path} ({summary.size / 1024:,.0f} KiB, {summary.events:,} "
               f"events from {summary.objects:,} objects, {summary.dead_letters:,} dead letters, "
               f"{summary.seconds['total']:.1f} s)")
