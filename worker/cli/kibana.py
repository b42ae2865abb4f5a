"""`sluice kibana`: the data view and a dashboard of the report's panels, for Kibana."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from worker.cli.settings import load_cli_settings as _settings

kibana_cli = typer.Typer(help="Kibana: the events data view and a dashboard of the usage "
                              "report's panels (API usage and behaviour).")


@kibana_cli.command("import")
def kibana_import(
    url: str = typer.Option(None, help="Kibana's URL (default SLUICE_KIBANA_URL)."),
    space: str = typer.Option(None, help="Kibana space (default SLUICE_KIBANA_SPACE)."),
) -> None:
    """Install (or update) the data view and the dashboard through Kibana's saved-objects
    import API (`overwrite=true`)."""
    from worker.kibana.importer import KibanaImportError, import_saved_objects
    from worker.kibana.saved_objects import DASHBOARD_ID, saved_objects, to_ndjson

    settings = _settings()
    overrides = {key: value for key, value in (("kibana_url", url), ("kibana_space", space))
                 if value is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    objects = saved_objects(settings)
    try:
        result = asyncio.run(import_saved_objects(settings, to_ndjson(objects)))
    except KibanaImportError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    space_path = f"/s/{settings.kibana_space}" if settings.kibana_space else ""
    typer.echo(f"imported {result.imported} saved objects; the dashboard: "
               f"{settings.kibana_url.rstrip('/')}{space_path}/app/dashboards#/view/"
               f"{DASHBOARD_ID}")


@kibana_cli.command("objects")
def kibana_objects(
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write the NDJSON here instead of to standard output."),
) -> None:
    """Print the saved objects as NDJSON (for Kibana's Saved Objects page, or `curl`)."""
    from worker.kibana.saved_objects import saved_objects, to_ndjson

    ndjson = to_ndjson(saved_objects(_settings()))
    if output is None:
        typer.echo(ndjson.decode(), nl=False)
    else:
        output.write_bytes(ndjson)
        typer.echo(f"wrote {output}", err=True)
