"""`python -m bench.report_month`: how long `sluice report` takes on a month of access logs
(1,000,000 events, tests/support/archive_month.py), how large the file is, and what the other
ways of drawing its charts would cost.

Needs the local stack (`sluice stack up`). Writes the month once to the bucket
`bench-report` (kept between runs), then builds the report `--runs` times and prints each
step's time (listing, fetching and loading into DuckDB, dead letters, charts), the file's
size, the CPU time of the report's process and of the S3 server (which shares the machine),
and the load average before each run. With
`--compare-renderers` it also draws the same panels' figures with plotly (library inlined)
and sizes them with ECharts' inlined library (`--echarts PATH` to its `echarts.min.js`, e.g.
from `npm install echarts`): not timed tests, a measurement to read (README, "sluice report").
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import typer

from tests.support.archive_month import month_start, write_month
from worker.config import load_settings
from worker.local.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY
from worker.report.build import build_report
from worker.report.page import DATA_ELEMENT_ID
from worker.report.panels import PANELS, Kind
from worker.report.window import Window
from worker.sinks.s3.client import preflight

BUCKET = "bench-report"
PREFIX = "month/"


async def _count_objects(settings: Any) -> int:
    from worker.report.archive import list_archive

    return len(await list_archive(settings))


def _s3_server(settings: Any) -> Any:
    """The process listening on the S3 endpoint's port (the local stack's server), or None."""
    import psutil

    port = int((settings.s3_endpoint_url or "").rsplit(":", 1)[-1].strip("/"))
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return psutil.Process(connection.pid) if connection.pid else None
    return None


def _cpu_seconds(process: Any) -> float:
    if process is None:
        return float("nan")
    times = process.cpu_times()
    return times.user + times.system


def _figures(path: Path) -> dict[str, Any]:
    text = path.read_text()
    start = text.index(f'id="{DATA_ELEMENT_ID}">') + len(f'id="{DATA_ELEMENT_ID}">')
    return json.loads(text[start:text.index("</script>", start)].replace("<\\/", "</"))


def _plotly(data: dict[str, Any]) -> tuple[float, int]:
    """Seconds and bytes of the same panels as plotly figures in one page, library inlined."""
    import plotly.graph_objects as go
    import plotly.io as pio

    started = time.perf_counter()
    parts = []
    for index, panel in enumerate(PANELS):
        block = data["panels"][panel.id]
        rows = [dict(zip(block["columns"], row, strict=True)) for row in block["rows"]]
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(row.get(panel.colour) if panel.colour else "", []).append(row)
        traces = []
        for name, members in groups.items():
            xs, ys = [r[panel.x] for r in members], [r[panel.y] for r in members]
            if panel.x_kind is Kind.TIME:
                traces.append(go.Scatter(x=xs, y=ys, name=str(name)))
            else:
                traces.append(go.Bar(x=xs, y=ys, name=str(name),
                                     orientation="h" if panel.y_kind is Kind.CATEGORY else "v"))
        parts.append(pio.to_html(go.Figure(traces), include_plotlyjs=index == 0, full_html=False))
    return time.perf_counter() - started, sum(len(part.encode()) for part in parts)


def _echarts(data: dict[str, Any], library: Path) -> tuple[float, int]:
    """Seconds and bytes of the panels' ECharts options (their rows) plus the inlined library."""
    started = time.perf_counter()
    options = [json.dumps({"dataset": {"source": [block["columns"], *block["rows"]]}})
               for block in data["panels"].values()]
    return time.perf_counter() - started, library.stat().st_size + sum(map(len, options))


def _scan_local_copy(settings: Any, window: Window) -> None:
    """The same scan from a local copy of the objects: what DuckDB costs without the S3
    server (which shares this machine's cores)."""
    import tempfile

    from worker.report.archive import list_archive, select_objects
    from worker.report.scan import connect, load_events
    from worker.sinks.s3.client import make_client_context

    selection = select_objects(asyncio.run(list_archive(settings)), window)

    async def fetch(root: Path) -> None:
        gate = asyncio.Semaphore(8)
        async with make_client_context(settings) as client:
            async def one(key: str) -> None:
                async with gate:
                    answer = await client.get_object(Bucket=settings.s3_bucket, Key=key)
                    async with answer["Body"] as body:
                        data = await body.read()
                (root / key).parent.mkdir(parents=True, exist_ok=True)
                (root / key).write_bytes(data)

            await asyncio.gather(*(one(item.key) for item in selection.objects))

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(fetch(Path(directory)))
        connection = connect()
        began, cpu = time.perf_counter(), time.process_time()
        events = load_events(connection, settings, selection, window, root=Path(directory))
        print(f"scan of a local copy: {events:,} events in {time.perf_counter() - began:.2f} s "
              f"(CPU {time.process_time() - cpu:.1f} s; load average {os.getloadavg()[0]:.1f})")


def main(runs: int = typer.Option(3, min=1), output: Path = Path("bench/results/report.html"),
         local_copy: bool = typer.Option(False, help="Also time the scan of a local copy."),
         compare_renderers: bool = False,
         echarts: Path = typer.Option(None, exists=True, dir_okay=False)) -> None:
    settings = load_settings(s3_bucket=BUCKET, s3_prefix=PREFIX,
                             aws_access_key_id=LOCAL_S3_ACCESS_KEY,
                             aws_secret_access_key=LOCAL_S3_SECRET_KEY)
    start = month_start()
    asyncio.run(preflight(settings))
    if asyncio.run(_count_objects(settings)) == 0:
        began = time.perf_counter()
        month = asyncio.run(write_month(settings, start))
        print(f"wrote {month.events:,} events in {month.objects:,} objects "
              f"({month.bytes / 2**20:.1f} MiB) in {time.perf_counter() - began:.1f} s")
    window = Window(start, month_start(1) if start.month != 12 else start.replace(
        year=start.year + 1, month=1))
    totals = []
    server = _s3_server(settings)
    for run in range(1, runs + 1):
        # The machine is shared: the load before each run, this process's CPU time (the
        # fetches, DuckDB's threads and the chart renderer run in it), and the S3 server's
        # (on this machine too; other clients of it count as well).
        load = os.getloadavg()[0]
        cpu, served = time.process_time(), _cpu_seconds(server)
        summary = build_report(settings, window, output, dead_letters=False)
        cpu, served = time.process_time() - cpu, _cpu_seconds(server) - served
        totals.append(summary.seconds["total"])
        steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in summary.seconds.items())
        print(f"run {run}: {summary.events:,} events, {summary.objects:,} objects "
              f"({summary.archive_bytes / 2**20:.1f} MiB), {summary.size / 1024:.0f} KiB; {steps}; "
              f"CPU {cpu:.1f} s, S3 server CPU {served:.1f} s; load average before: {load:.1f} "
              f"on {os.cpu_count()} cores")
    print(f"median total: {statistics.median(totals):.2f} s over {runs} runs; report: {output}")
    if local_copy:
        _scan_local_copy(settings, window)
    if compare_renderers:
        data = _figures(output)
        seconds, size = _plotly(data)
        print(f"plotly, library inlined: {size / 1024:.0f} KiB, {seconds:.2f} s")
        if echarts:
            seconds, size = _echarts(data, echarts)
            print(f"ECharts, library inlined: {size / 1024:.0f} KiB, {seconds:.2f} s "
                  "(charts drawn in the browser)")


if __name__ == "__main__":
    typer.run(main)
