"""The systems the benchmark compares, each run as its own process(es) on the same topic.

Every runner starts from a fresh consumer group on a topic the benchmark filled beforehand, and
is timed from its first consumed record to the moment its group has committed every record.
Sluice and Quix Streams commit only what their sinks have durably written, so that moment is the
last durable write (plus at most one commit interval, the same for both). The raw baseline
reports its own first-record and file-closed times.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.measure import CommitWatch, PeakMemory, scrape, wait_until
from worker.config import Settings
from worker.kafka.topics import ensure_topics
from worker.local.demo import start_worker, stop_worker
from worker.local.samples import DEMO_CATALOG
from worker.sinks.s3.client import preflight

REPO_ROOT = Path(__file__).resolve().parent.parent
# Both stream processors flush on the same cadence: Quix Streams writes its sinks at every
# checkpoint (its commit interval); Sluice uploads S3 parts after this age and commits this often.
FLUSH_SECONDS = 2.0
ICEBERG = "iceberg"
COMMIT_SECONDS = 1.0
RUN_TIMEOUT = 900.0
# A run whose group commits nothing more for this long has failed (e.g. a consumer that cannot
# read the broker's answers): it is reported as failed with its log's last error, not awaited.
STALL_SECONDS = 60.0
# How long a system may take from its start to its first consumed record.
FIRST_RECORD_TIMEOUT = 120.0


class ScenarioFailed(Exception):
    """A system failed in a scenario (exited, stalled, or never started consuming)."""


@dataclass(frozen=True)
class Scenario:
    """One measured run: which system, which sinks, how many workers on which topic."""

    name: str
    system: str  # "sluice", "quix", "raw" or "bulk" (the plain bulk loader)
    sinks: tuple[str, ...] = ()
    partitions: int = 4
    workers: int = 1
    null_elasticsearch: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    # Sluice only: once every record is consumed, stop the workers with SIGTERM and time the
    # drain (for parts that would otherwise stay open until their age limit).
    drain_at_end: bool = False
    # How often the scenario is measured; the table shows the median run. Runs of a few
    # seconds whose last flush waits for a part's age or a checkpoint move with the machine.
    runs: int = 1
    # Which of those runs this is (each runs from fresh consumer groups, prefixes, indices).
    attempt: int = 0
    # Events of the topic the scenario reads (None: the run's --events); the long scenarios
    # read a topic of their own, long enough that one S3 part's age is a small share of a run.
    events: int | None = None


@dataclass
class Result:
    """What one scenario measured."""

    scenario: Scenario
    events: int
    seconds: float
    peak_rss_mib: float
    delivered: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    s3_bytes: int = 0  # object bytes Sluice's S3 sink uploaded (its metric)
    # Sluice → Iceberg: the table's data files per partition hour (None for other sinks)
    files_per_hour: float | None = None
    # events/s of every run of the scenario, in the order measured (see `median_run`)
    rates: tuple[float, ...] = ()
    # Why the system failed in this scenario (None: it did not); a failed run has no rate.
    error: str | None = None

    @classmethod
    def failed(cls, scenario: Scenario, events: int, error: str,
               peak_rss_mib: float = 0.0) -> Result:
        return cls(scenario, events, 0.0, peak_rss_mib, error=error)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BenchContext:
    """What every runner of one benchmark run shares."""

    run_id: str
    settings: Settings
    topics: dict[tuple[int, int], str]  # (partitions, events) -> source topic
    ends: dict[tuple[int, int], dict]  # (partitions, events) -> end offset per TopicPartition
    events: int
    work_dir: Path
    null_elasticsearch_url: str

    def events_of(self, scenario: Scenario) -> int:
        """How many events the scenario's topic holds."""
        return scenario.events or self.events

    def shape(self, scenario: Scenario) -> tuple[int, int]:
        """The key of the scenario's topic: (partitions, events)."""
        return scenario.partitions, self.events_of(scenario)

    def topic(self, scenario: Scenario) -> str:
        return self.topics[self.shape(scenario)]

    def slug(self, scenario: Scenario) -> str:
        name = f"{self.run_id}-{scenario.name}"
        if scenario.attempt:
            name += f"-run{scenario.attempt + 1}"
        return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def median_run(results: list[Result]) -> Result:
    """The run with the median throughput (the lower middle one of an even count), carrying the
    throughput of every run. A scenario in which any run failed is reported as failed (by its
    first failure): a figure from the runs that happened to succeed would hide it."""
    if not results:
        raise ValueError("no runs to choose from")
    failure = next((result for result in results if result.error), None)
    if failure is not None:
        return failure
    ranked = sorted(results, key=lambda result: result.events_per_second)
    chosen = ranked[(len(ranked) - 1) // 2]
    return replace(chosen, rates=tuple(result.events_per_second for result in results))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


ERROR_LINE = re.compile(r"error|exception|invalid|failed|traceback", re.IGNORECASE)


def last_error(path: Path) -> str:
    """The last line of a log that reads like an error (else its last line), for the table."""
    lines = [line.strip() for line in log_tail(path).splitlines() if line.strip()]
    errors = [n for n, line in enumerate(lines) if ERROR_LINE.search(line)]
    if not errors:
        return lines[-1][:300] if lines else "no output"
    chosen = errors[-1]
    # A heading such as "Invalid configuration:" is only read with the lines it introduces.
    end = len(lines) if lines[chosen].endswith(":") else chosen + 1
    return " ".join(lines[chosen:end])[:300]


async def _measure(ctx: BenchContext, scenario: Scenario, group: str,
                   processes: list[subprocess.Popen[bytes]], logs: list[Path],
                   first_consumed: Callable[[], Awaitable[bool]],
                   all_consumed: Callable[[], Awaitable[bool]] | None = None,
                   ) -> tuple[float, float, PeakMemory]:
    """When the first record was seen consumed, and when the group had committed every record.

    With `all_consumed`, the processes are stopped (SIGTERM) once it is true and the end is
    when they have exited, having drained.
    """
    peak = PeakMemory()
    stopping = False

    def check_alive() -> None:
        peak.sample([p.pid for p in processes])
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None and not stopping:
                raise ScenarioFailed(f"exited with {process.returncode}: {last_error(log)}")

    async def consumed() -> bool:
        check_alive()
        return await first_consumed()

    bootstrap = ctx.settings.kafka_bootstrap_servers
    progress = StallGuard(STALL_SECONDS, logs)
    async with CommitWatch(bootstrap, group, ctx.ends[ctx.shape(scenario)]) as watch:
        async def committed() -> bool:
            check_alive()
            remaining = await watch.remaining()
            progress.saw(remaining)
            return remaining == 0

        try:
            first = await wait_until(consumed, timeout=FIRST_RECORD_TIMEOUT)
        except TimeoutError:
            raise ScenarioFailed(f"no record consumed within {FIRST_RECORD_TIMEOUT:.0f}s: "
                                 f"{last_error(logs[0])}") from None
        if all_consumed is None:
            end = await wait_until(committed, timeout=RUN_TIMEOUT, interval=0.1)
        else:
            async def consumed_everything() -> bool:
                check_alive()
                done = await all_consumed()
                progress.saw(await watch.remaining())
                return done

            await wait_until(consumed_everything, timeout=RUN_TIMEOUT, interval=0.1)
            stopping = True
            for process in processes:
                process.send_signal(signal.SIGTERM)
            while any(process.poll() is None for process in processes):
                peak.sample([p.pid for p in processes])
                await asyncio.sleep(0.02)
            end = time.monotonic()
            if await watch.remaining():
                raise ScenarioFailed(f"records left uncommitted after the drain: "
                                     f"{last_error(logs[0])}")
    return first, end, peak


class StallGuard:
    """Fails a run whose group has committed nothing more for `bound` seconds."""

    def __init__(self, bound: float, logs: list[Path]) -> None:
        self.bound = bound
        self.logs = logs
        self.remaining: int | None = None
        self.since = time.monotonic()

    def saw(self, remaining: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.remaining is None or remaining < self.remaining:
            self.remaining, self.since = remaining, now
        elif now - self.since > self.bound:
            raise ScenarioFailed(
                f"stalled: {remaining:,} records left uncommitted, none committed for "
                f"{self.bound:.0f}s; last error: {last_error(self.logs[0])}")


def sluice_settings(ctx: BenchContext, scenario: Scenario) -> Settings:
    slug = ctx.slug(scenario)
    update: dict[str, Any] = {
        "app_id": f"bench-{slug}",
        "source_topic": ctx.topic(scenario),
        "dead_letter_topic": f"bench-{slug}-dead-letters",
        "catalog_topic": f"bench-{ctx.run_id}-catalog",
        "sinks": list(scenario.sinks),
        "elasticsearch_index": f"bench-{slug}-%Y.%m.%d",
        "elasticsearch_template_name": f"bench-{slug}",
        "s3_bucket": "sluice-bench",
        "s3_prefix": f"{slug}/",
        "commit_interval": COMMIT_SECONDS,
        "s3_part_max_age": FLUSH_SECONDS,
        "state_dir": ctx.work_dir / slug / "state",
        **scenario.settings,
    }
    if ICEBERG in scenario.sinks and "iceberg_table" not in scenario.settings:
        # A table per run; it commits on the S3 parts' cadence (its default, 300 s, would make
        # the run a wait for the timer), so both sinks are measured alike.
        update["iceberg_table"] = "bench.run_" + slug.replace("-", "_")
        update["iceberg_warehouse"] = "s3://sluice-bench/iceberg"
        update["iceberg_commit_interval"] = FLUSH_SECONDS
    if scenario.null_elasticsearch:
        update["elasticsearch_url"] = ctx.null_elasticsearch_url
    return ctx.settings.model_copy(update=update)


def iceberg_files_per_hour(settings: Settings) -> float:
    """The table's data files per partition (hour) it holds: what a commit cadence costs in
    small files before `sluice iceberg compact` (blocking: run in a thread)."""
    from worker.sinks.iceberg.client import load_table, open_catalog

    table = load_table(open_catalog(settings), settings)
    tasks = list(table.scan().plan_files())
    hours = {task.file.partition[0] for task in tasks}
    return len(tasks) / len(hours) if hours else 0.0


async def run_sluice(ctx: BenchContext, scenario: Scenario) -> Result:
    """`sluice worker` processes (one per worker) with the scenario's sinks."""
    settings = sluice_settings(ctx, scenario)
    await ensure_topics(settings)
    ports = [free_port() for _ in range(scenario.workers)]
    logs = [ctx.work_dir / f"{ctx.slug(scenario)}-worker{n}.log" for n in range(len(ports))]
    workers = [start_worker(settings.model_copy(update={"web_port": port}), log)
               for port, log in zip(ports, logs, strict=True)]
    try:
        async with aiohttp.ClientSession() as session:
            async def consumed_records() -> int:
                counts = [(await scrape(session, port)).get("sluice_records_consumed_total", 0)
                          for port in ports]
                return int(sum(counts))

            async def first_consumed() -> bool:
                return await consumed_records() > 0

            async def all_consumed() -> bool:
                return await consumed_records() >= ctx.events_of(scenario)

            # Delivery counts are read before the end: a drained worker is gone.
            delivered: dict[str, int] = {}
            dead = s3_bytes = 0
            first, end, peak = await _measure(
                ctx, scenario, settings.app_id, workers, logs, first_consumed,
                all_consumed if scenario.drain_at_end else None)
            for port in ports:
                for name, value in (await scrape(session, port)).items():
                    if name.startswith("sluice_events_delivered_total"):
                        sink = name.split('"')[1]
                        delivered[sink] = delivered.get(sink, 0) + int(value)
                    elif name.startswith("sluice_dead_letters_total"):
                        dead += int(value)
                    elif name == "sluice_s3_bytes_written_total":
                        s3_bytes += int(value)
    finally:
        for worker in workers:
            stop_worker(worker)
    files_per_hour = (await asyncio.to_thread(iceberg_files_per_hour, settings)
                      if ICEBERG in scenario.sinks else None)
    return Result(scenario, ctx.events_of(scenario), end - first, peak.max_mib, delivered, dead,
                  s3_bytes, files_per_hour=files_per_hour)


async def run_quix(ctx: BenchContext, scenario: Scenario) -> Result:
    """bench/quix_job.py: the same job with Quix Streams and its own sinks."""
    slug = ctx.slug(scenario)
    settings = ctx.settings
    # The bucket is made by Sluice's start-up check; a Quix-only run (or a local stack that was
    # restarted since the topics were filled) would find none.
    await preflight(settings.model_copy(update={"s3_bucket": "sluice-bench"}))
    environment = {
        **os.environ,
        "BENCH_BOOTSTRAP": settings.kafka_bootstrap_servers,
        "BENCH_GROUP": f"bench-{slug}",
        "BENCH_TOPIC": ctx.topic(scenario),
        "BENCH_SINKS": ",".join(scenario.sinks),
        "BENCH_COMMIT_INTERVAL": str(FLUSH_SECONDS),
        "BENCH_ES_URL": (ctx.null_elasticsearch_url if scenario.null_elasticsearch
                         else settings.elasticsearch_url),
        "BENCH_ES_INDEX": f"bench-{slug}",
        "BENCH_S3_BUCKET": "sluice-bench",
        "BENCH_S3_DIRECTORY": slug.replace("-", "_"),
        "BENCH_S3_ENDPOINT": settings.s3_endpoint_url or "",
        "BENCH_S3_KEY": settings.aws_access_key_id or "",
        "BENCH_S3_SECRET": settings.aws_secret_access_key or "",
        "BENCH_CATALOG": orjson.dumps(list(DEMO_CATALOG)).decode(),
        "PYTHONPATH": str(REPO_ROOT),
    }
    log = ctx.work_dir / f"{slug}.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / "bench" / "quix_job.py")],
                                   stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=environment,
                                   cwd=ctx.work_dir)
    started: list[float] = []

    async def first_consumed() -> bool:
        match = re.search(r"^FIRST ([0-9.]+)$", log.read_text(errors="replace"), re.MULTILINE)
        if match:
            started.append(float(match.group(1)))
        return bool(match)

    try:
        _, end, peak = await _measure(ctx, scenario, f"bench-{slug}", [process], [log],
                                      first_consumed)
    finally:
        stop_worker(process)
    # The job printed its exact first-record time (CLOCK_MONOTONIC is system-wide).
    return Result(scenario, ctx.events_of(scenario), end - started[0], peak.max_mib)


async def run_raw(ctx: BenchContext, scenario: Scenario) -> Result:
    """bench/raw_baseline.py: aiokafka, JSON decode and a local gzip file, nothing else."""
    slug = ctx.slug(scenario)
    out = ctx.work_dir / f"{slug}.ndjson.gz"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.raw_baseline", ctx.settings.kafka_bootstrap_servers,
         ctx.topic(scenario), f"bench-{slug}", str(ctx.events_of(scenario)), str(out),
         str(ctx.settings.s3_gzip_level)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
    )
    try:
        output, errors = await asyncio.to_thread(process.communicate, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise ScenarioFailed(f"not done within {RUN_TIMEOUT:.0f}s") from None
    if process.returncode != 0:
        last = (errors.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise ScenarioFailed(f"exited with {process.returncode}: {last[:300]}")
    timing = orjson.loads(output.splitlines()[-1])
    out.unlink(missing_ok=True)
    return Result(scenario, int(timing["events"]), timing["end"] - timing["first"],
                  timing["peak_rss_kib"] / 1024, {"file": int(timing["events"])})


async def run_bulk_loader(ctx: BenchContext, scenario: Scenario) -> Result:
    """bench/bulk_loader.py: Sluice's documents sent to the ES-API with plain `_bulk` requests."""
    slug = ctx.slug(scenario)
    url = ctx.settings.elasticsearch_url.split(",")[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bulk_loader", url, f"bench-{slug}-%Y.%m.%d",
         f"bench-{slug}", str(ctx.events)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
    )
    try:
        output, _ = await asyncio.to_thread(process.communicate, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise ScenarioFailed(f"not done within {RUN_TIMEOUT:.0f}s") from None
    if process.returncode != 0:
        raise ScenarioFailed(f"exited with {process.returncode}: {output[-300:]!r}")
    timing = orjson.loads(output.splitlines()[-1])
    return Result(scenario, int(timing["events"]), timing["end"] - timing["first"],
                  timing["peak_rss_kib"] / 1024, {"elasticsearch": int(timing["events"])},
                  int(timing["errors"]))


RUNNERS = {"sluice": run_sluice, "quix": run_quix, "raw": run_raw, "bulk": run_bulk_loader}
