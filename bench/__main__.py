"""`python -m bench` (or `make bench`): the whole benchmark in one run.

Produces the events once per topic shape, runs every scenario on them one after another, prints
the table and writes it as JSON (and into the README with --update-readme).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import orjson
import typer
from elasticsearch import AsyncElasticsearch

from bench.events import bench_events
from bench.measure import end_offsets
from bench.report import git_commit, machine, markdown, rows, update_readme
from bench.runners import (
    REPO_ROOT,
    RUNNERS,
    BenchContext,
    Result,
    Scenario,
    ScenarioFailed,
    free_port,
    median_run,
)
from worker.catalog.entries import CatalogEntry, publish_entries
from worker.config import Settings, load_settings
from worker.kafka.topics import TopicSpec, ensure_topics
from worker.local.produce import produce
from worker.local.samples import DEMO_CATALOG
from worker.local.stack import LocalStack
from worker.sinks.s3 import client as s3

BENCH_STACK_DIR = REPO_ROOT / ".sluice" / "bench-stack"
ES, S3, ICEBERG = "elasticsearch", "s3", "iceberg"
# The scenarios that issue 16's ratios compare run this often (the median counts): their runs
# last a few seconds, and whether the last S3 part or Quix Streams checkpoint falls just before
# or just after the last record moves a single run's figure by up to half.
TARGET_RUNS = 3
# The long scenarios' topic: long enough that one S3 part's age (2 s) is under a tenth of a run,
# so that they measure the worker rather than the flush cadence (issue 30).
LONG_EVENTS = 500_000
LONG = f"{LONG_EVENTS:,} events"

SCENARIOS = [
    Scenario("raw baseline: aiokafka + JSON decode + gzip file", "raw",
             note="the most Python does here", runs=TARGET_RUNS),
    Scenario("plain bulk loader → Elasticsearch", "bulk", (ES,),
             note="the same documents in plain _bulk requests: what the local ES-API accepts"),
    Scenario("Sluice → S3", "sluice", (S3,), runs=TARGET_RUNS),
    Scenario("Sluice → S3 Parquet", "sluice", (S3,), settings={"s3_format": "parquet"},
             note="SLUICE_S3_FORMAT=parquet (zstd); the row above is gzip NDJSON"),
    Scenario("Quix Streams → S3", "quix", (S3,), runs=TARGET_RUNS),
    Scenario("Sluice → Elasticsearch", "sluice", (ES,), note="local ES-API server"),
    Scenario("Quix Streams → Elasticsearch", "quix", (ES,), note="local ES-API server"),
    Scenario("Sluice → both", "sluice", (ES, S3)),
    Scenario("Quix Streams → both", "quix", (ES, S3)),
    Scenario("Sluice → null bulk endpoint", "sluice", (ES,), null_elasticsearch=True,
             note="accept-all bulk endpoint", runs=TARGET_RUNS),
    Scenario("Quix Streams → null bulk endpoint", "quix", (ES,), null_elasticsearch=True,
             note="accept-all bulk endpoint", runs=TARGET_RUNS),
    Scenario("Sluice → S3, hourly publication", "sluice", (S3,),
             settings={"s3_publish": "hourly"},
             note="hour parts under _sluice/; the merge after the hour closes is not timed"),
    Scenario("Sluice → S3, 1 partition", "sluice", (S3,), partitions=1),
    Scenario("Sluice → S3, 2 workers", "sluice", (S3,), workers=2),
    Scenario("Sluice → both, 2 workers", "sluice", (ES, S3), workers=2),
    Scenario("Sluice → S3, one part per partition", "sluice", (S3,),
             settings={"s3_part_max_age": 3600.0, "s3_part_max_bytes": 1 << 30,
                       "s3_max_buffered_events": 10_000_000}, drain_at_end=True,
             note="memory: every event held in open parts, uploaded by the SIGTERM drain"),
    Scenario("Sluice → Iceberg", "sluice", (ICEBERG,),
             note="SQL catalog on PostgreSQL, data files on S3, a commit every 2 s"),
    Scenario(f"raw baseline, {LONG}", "raw", events=LONG_EVENTS,
             note="the long scenario's baseline"),
    Scenario(f"Sluice → S3, {LONG}", "sluice", (S3,), events=LONG_EVENTS),
    Scenario(f"Sluice → S3 Parquet, {LONG}", "sluice", (S3,), events=LONG_EVENTS,
             settings={"s3_format": "parquet"}, note="SLUICE_S3_FORMAT=parquet (zstd)"),
    Scenario(f"Quix Streams → S3, {LONG}", "quix", (S3,), events=LONG_EVENTS),
]


def _bench_settings() -> Settings:
    from worker.local.stack import with_local_credentials

    return with_local_credentials(load_settings(stack_dir=BENCH_STACK_DIR))


Shape = tuple[int, int]  # (partitions, events) of a source topic


@contextmanager
def bench_stack() -> Iterator[None]:
    """The local stack for a benchmark: the running one if every server is up; else a fresh
    one (empty data) started here and stopped afterwards."""
    stack = LocalStack(_bench_settings())
    started_stack = any(server.down_services for server in stack.status())
    if started_stack:
        shutil.rmtree(stack.data_dir, ignore_errors=True)
        stack.up()
    try:
        yield
    finally:
        if started_stack:
            stack.down()


async def _prepare(settings: Settings, run_id: str, shapes: set[Shape],
                   say: typer.echo) -> tuple[dict[Shape, str], dict[Shape, dict]]:
    """One topic per (partitions, events) shape the scenarios read, filled before any run."""
    topics = {(count, events): f"bench-{run_id}-p{count}-e{events}"
              for count, events in sorted(shapes)}
    catalog = f"bench-{run_id}-catalog"
    await ensure_topics(settings, [TopicSpec(name, count, 1)
                                   for (count, _), name in topics.items()]
                        + [TopicSpec(catalog, 1, 1, {"cleanup.policy": "compact"})])
    await publish_entries(settings.model_copy(update={"catalog_topic": catalog}),
                          [CatalogEntry.model_validate(entry) for entry in DEMO_CATALOG])
    await s3.preflight(settings.model_copy(update={"s3_bucket": "sluice-bench"}))
    ends = {}
    for shape, topic in topics.items():
        events = shape[1]
        started = time.monotonic()
        await produce(settings, ((key, value, "bench") for key, value in bench_events(events)),
                      topic=topic)
        ends[shape] = await end_offsets(settings.kafka_bootstrap_servers, topic)
        say(f"produced {events:,} events to {topic} in {time.monotonic() - started:.1f}s")
    return topics, ends


async def _drop_indices(settings: Settings, prefix: str) -> None:
    """The local ES-API server slows down as it grows: each scenario starts from nothing. The
    scenario's index template goes too (the next scenario's index pattern may overlap it)."""
    client = AsyncElasticsearch(settings.elasticsearch_url)
    try:
        indices = await client.indices.get(index=f"{prefix}*")
        for name in indices.body:
            await client.indices.delete(index=name)
        await client.options(ignore_status=404).indices.delete_index_template(name=prefix)
    except Exception as error:  # noqa: BLE001 (clean-up only; the next scenario still runs)
        typer.echo(f"  (could not delete indices {prefix}*: {error})")
    finally:
        await client.close()


async def _run(events: int, scenarios: list[Scenario], work_dir: Path) -> list[Result]:
    settings = _bench_settings()
    run_id = time.strftime("%m%d%H%M%S")
    shapes = {(s.partitions, s.events or events) for s in scenarios if s.system != "bulk"}
    topics, ends = await _prepare(settings, run_id, shapes, typer.echo)
    null_port = free_port()
    null_server = subprocess.Popen([sys.executable, "-m", "bench.null_elasticsearch",
                                    str(null_port)], cwd=REPO_ROOT)
    ctx = BenchContext(run_id, settings, topics, ends, events, work_dir,
                       f"http://127.0.0.1:{null_port}")
    results = []
    try:
        for scenario in scenarios:
            runs = []
            for attempt in range(scenario.runs):
                run = replace(scenario, attempt=attempt)
                try:
                    result = await RUNNERS[scenario.system](ctx, run)
                except (ScenarioFailed, TimeoutError) as error:
                    # Reported as failed, with its error; the other scenarios still run.
                    result = Result.failed(run, ctx.events_of(run),
                                           str(error) or type(error).__name__)
                    runs.append(result)
                    typer.echo(f"{scenario.name:<52} FAILED: {result.error}")
                    break  # one failure fails the scenario (see median_run)
                runs.append(result)
                typer.echo(f"{scenario.name:<52} {result.events_per_second:>9,.0f} events/s "
                           f"{result.seconds:6.1f}s  peak RSS {result.peak_rss_mib:5.0f} MiB  "
                           f"delivered {result.delivered or '–'}")
                if ES in scenario.sinks and not scenario.null_elasticsearch:
                    await _drop_indices(settings, f"bench-{ctx.slug(run)}")
            results.append(median_run(runs))
    finally:
        null_server.terminate()
        null_server.wait()
    return results


def main(
    events: int = typer.Option(100_000, help="Events produced (to each topic shape)."),
    only: str = typer.Option("", help="Run only the scenarios with these names "
                             "(separated by `;`, any case); the raw baseline of the same "
                             "length always runs."),
    json_out: Path = typer.Option(REPO_ROOT / "bench" / "results" / "latest.json",
                                  "--json", help="Where the results are written as JSON."),
    readme: bool = typer.Option(False, "--update-readme",
                                help="Write the table into README.md's benchmark section."),
) -> None:
    """Run every benchmark scenario on the local stack and print the table."""
    wanted = [w.strip().lower() for w in only.split(";") if w.strip()]
    chosen = [s for s in SCENARIOS if not wanted or s.name.lower() in wanted]
    # A baseline runs whenever a chosen scenario reads its topic (its ratios need it).
    lengths = {s.events or events for s in chosen}
    scenarios = [s for s in SCENARIOS if s in chosen
                 or (s.system == "raw" and (s.events or events) in lengths)]
    unknown = set(wanted) - {s.name.lower() for s in SCENARIOS}
    if unknown:
        names = "; ".join(s.name for s in SCENARIOS)
        raise typer.BadParameter(f"no scenario named {', '.join(sorted(unknown))}; the "
                                 f"scenarios are: {names}", param_hint="--only")
    work_dir = REPO_ROOT / ".sluice" / "bench"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    with bench_stack():
        results = asyncio.run(_run(events, scenarios, work_dir))
    table = rows(results)
    text = markdown(table, events)
    typer.echo("\n" + text)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_bytes(orjson.dumps({"events": events, "machine": machine(),
                                       "commit": git_commit(REPO_ROOT),
                                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                       "results": table}, option=orjson.OPT_INDENT_2))
    typer.echo(f"\nJSON: {json_out}")
    if readme:
        update_readme(REPO_ROOT / "README.md", text)
        typer.echo("README.md benchmark section updated")


if __name__ == "__main__":
    typer.run(main)
