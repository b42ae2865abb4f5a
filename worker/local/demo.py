"""The main job on the local stack, end to end: what `make demo` (`sluice demo`) runs.

Starts the local stack, creates the topics, loads a small catalog, starts a `sluice worker`
process, produces sample events in every input form plus some malformed records, waits until
the worker has committed past all of them, and prints where they landed: the sinks' counts,
the dead-letter topic's reasons and the committed offsets.

Nothing is produced before the worker has joined its group: a worker that cannot start (its
web port held by another worker, say) stops the demo with the worker's own error line and
leaves the source topic as it was. The web port is checked before anything else, naming the
process that holds it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from worker.catalog.entries import CatalogEntry, publish_entries
from worker.config import Settings, SinkName, redact_url
from worker.deadletters.replay import dead_letter_end_offsets, read_dead_letters
from worker.kafka.group_offsets import PartitionProgress, group_progress
from worker.kafka.topics import ensure_topics
from worker.local.produce import produce, synthetic_records
from worker.local.samples import DEMO_CATALOG, SAMPLE_FORMS
from worker.local.stack import LocalStack, with_local_credentials
from worker.ops.startup_checks import StartupError, bind_web_port

Say = Callable[[str], None]


class DemoError(Exception):
    """The demo could not finish; the message says at which step and where the logs are."""


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A `sluice worker` process with the demo's settings, logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.update(settings.as_environment())
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "-m", "worker", "worker"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
        )


# The worker's log line once it owns partitions (worker.app.log_assignment).
STARTED_LINE = "partitions assigned: "


def check_web_port(settings: Settings) -> None:
    """DemoError naming the process that holds SLUICE_WEB_PORT, if one does: the demo's worker
    could not start, and it is better said before the stack starts and records are produced."""
    try:
        sock = bind_web_port(settings)
    except StartupError as error:
        raise DemoError(f"the demo's worker could not start: {error}") from None
    if sock is not None:
        sock.close()


def wait_until_started(worker: subprocess.Popen[bytes], log_path: Path,
                       timeout: float) -> None:
    """Wait until the worker has joined its group (its log says which partitions it owns);
    DemoError with the worker's error line if it stops first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while STARTED_LINE not in log_path.read_text(errors="replace"):
        if worker.poll() is not None:
            raise DemoError(f"the worker stopped (exit code {worker.returncode}) before it "
                            f"started: {last_error_line(log_path)}")
        if time.monotonic() > deadline:
            raise DemoError(f"the worker did not join its group within {timeout:.0f}s")
        time.sleep(0.2)


def last_error_line(log_path: Path) -> str:
    """The worker's `error: …` line (its one-line reason to stop), else its last line."""
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else (lines[-1] if lines else "nothing logged")


async def wait_until_committed(
    settings: Settings, timeout: float, worker: subprocess.Popen[bytes]
) -> list[PartitionProgress]:
    """Poll the group's committed offsets until no partition lags, the worker dies, or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        progress = await group_progress(settings, settings.source_topic)
        if progress and all(p.lag == 0 for p in progress):
            return progress
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with code {worker.returncode} before catching up")
        if time.monotonic() > deadline:
            lag = sum(p.lag for p in progress)
            raise DemoError(f"the worker still lags by {lag} records after {timeout:.0f}s")
        await asyncio.sleep(1.0)


def stop_worker(worker: subprocess.Popen[bytes], grace_seconds: float = 30.0) -> None:
    """SIGTERM (graceful: flush and commit), then SIGKILL if it does not leave in time."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def run_demo(settings: Settings, record_count: int, say: Say = print) -> None:
    """Run the whole demo; raise DemoError with the step that failed."""
    stack = LocalStack(settings)
    demo_dir = stack.root.parent / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    delivered_path = demo_dir / "delivered.ndjson"
    delivered_path.unlink(missing_ok=True)
    sinks = list(dict.fromkeys([*settings.sinks, SinkName.COUNTING]))  # counting lists events
    settings = with_local_credentials(settings).model_copy(update={
        "counting_sink_record_path": delivered_path,
        "sinks": sinks,
        # Hourly parts would make the demo wait minutes for its first S3 objects.
        "s3_part_max_age": min(settings.s3_part_max_age, 5.0),
    })

    check_web_port(settings)

    say("== 1. local stack")
    stack.up(log=lambda line: say(f"   {line}"))

    say("== 2. topics and catalog")
    created = asyncio.run(ensure_topics(settings))
    say(f"   topics created: {', '.join(created) or 'none (all exist)'}")
    entries = [CatalogEntry.model_validate(entry) for entry in DEMO_CATALOG]
    asyncio.run(publish_entries(settings, entries))
    say(f"   catalog: {', '.join(e.api_key_id for e in entries)} on {settings.catalog_topic}")
    dead_letters_before = asyncio.run(dead_letter_end_offsets(settings))

    log_path = demo_dir / "worker.log"
    say(f"== 3. worker (log: {log_path})")
    worker = start_worker(settings, log_path)
    try:
        wait_until_started(worker, log_path, timeout=120.0)
        say(f"== 4. producing {record_count} sample records (5% malformed) "
            f"to {settings.source_topic}")
        records = synthetic_records(record_count, SAMPLE_FORMS, 0.05, settings.max_record_bytes,
                                    seed=time.time_ns())
        kinds = asyncio.run(produce(settings, records))
        malformed = sum(n for kind, n in kinds.items() if kind.startswith("malformed"))
        say("   " + ", ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())
                               if not kind.startswith("malformed")) + f", malformed={malformed}")

        say("== 5. waiting for the worker to deliver them and commit")
        progress = asyncio.run(wait_until_committed(settings, timeout=120.0, worker=worker))
    except DemoError as error:
        raise DemoError(f"{error}; see {log_path}") from error
    finally:
        stop_worker(worker)

    say("== 6. where they landed")
    _report_delivered(settings, delivered_path, say)
    if SinkName.ELASTICSEARCH in settings.sinks:
        for line in asyncio.run(_elasticsearch_report(settings)):
            say(line)
    if SinkName.S3 in settings.sinks:
        for line in asyncio.run(_s3_report(settings)):
            say(line)
    dead_letters_after = asyncio.run(dead_letter_end_offsets(settings))
    letters = asyncio.run(
        read_dead_letters(settings, dead_letters_before, dead_letters_after)
    )
    reasons = Counter(f"{letter.stage}/{letter.error_class}" for letter in letters)
    say(f"   dead-letter topic {settings.dead_letter_topic_name}: {len(letters)} records "
        f"({', '.join(f'{k}={n}' for k, n in sorted(reasons.items())) or 'none'})")
    say(f"   source topic {settings.source_topic}, consumer group {settings.app_id}: committed "
        + ", ".join(f"p{p.partition}={p.committed}/{p.end_offset}" for p in progress)
        + f" (lag {sum(p.lag for p in progress)})")
    say(f"   worker log: {log_path}")
    say("   the stack keeps running; stop it with `.venv/bin/sluice stack down`")


async def _elasticsearch_report(settings: Settings) -> list[str]:
    from worker.sinks.elasticsearch.naming import index_glob
    from worker.sinks.elasticsearch.sink import describe_cluster, make_client

    client = make_client(settings)
    pattern = index_glob(settings.elasticsearch_index)
    try:
        await client.indices.refresh(index=pattern)
        indices = sorted((await client.indices.get(index=pattern)).body)
        counts = [(name, (await client.count(index=name))["count"]) for name in indices]
    finally:
        await client.close()
    lines = [f"   elasticsearch {describe_cluster(settings)}: "
             f"{sum(n for _, n in counts)} documents in {pattern}"]
    lines += [f"     {name}: {count}" for name, count in counts[-5:]]
    lines.append(f"     try: curl '{settings.elasticsearch_url.split(',')[0]}/{pattern}/_search"
                 "?q=type:access_log&size=1&pretty'")
    return lines


async def _s3_report(settings: Settings) -> list[str]:
    import gzip

    from worker.sinks.s3.sink import make_client_context

    keys: list[tuple[str, int]] = []
    events = 0
    async with make_client_context(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket,
                                             Prefix=settings.s3_prefix):
            keys += [(item["Key"], item["Size"]) for item in page.get("Contents", [])
                     if "/_sluice/" not in f"/{item['Key']}"]
        for key, _ in keys:
            response = await client.get_object(Bucket=settings.s3_bucket, Key=key)
            async with response["Body"] as body:
                events += gzip.decompress(await body.read()).count(b"\n")
    endpoint = redact_url(settings.s3_endpoint_url or "AWS S3")
    return [f"   s3 {endpoint} bucket {settings.s3_bucket}: {len(keys)} objects, "
            f"{events} events, {sum(size for _, size in keys)} bytes (gzip)"
            ] + object_listing([key for key, _ in keys])


def object_listing(keys: list[str], shown: int = 3) -> list[str]:
    """The last `shown` object keys in key order, saying so when there are more."""
    listed = sorted(keys)[-shown:]
    heading = [f"     the last {len(listed)} of them:"] if len(keys) > len(listed) else []
    return heading + [f"     {key}" for key in listed]


def _report_delivered(settings: Settings, delivered_path: Path, say: Say) -> None:
    lines = [orjson.loads(line) for line in delivered_path.read_bytes().splitlines()] \
        if delivered_path.exists() else []
    by_type = Counter(line["type"] for line in lines)
    by_form = Counter(line["input_format"] for line in lines)
    enrichment = Counter(
        {True: "enriched", False: "unenriched"}[line["enriched"]]
        for line in lines if line.get("enriched") is not None
    )
    distinct = len({line["event_id"] for line in lines})
    say(f"   counting sink: {len(lines)} events ({distinct} distinct ids), "
        f"listed in {delivered_path}")
    say("     by type:  " + ", ".join(f"{k}={n}" for k, n in sorted(by_type.items())))
    say("     by input: " + ", ".join(f"{k}={n}" for k, n in sorted(by_form.items())))
    say("     access logs: " + ", ".join(f"{k}={n}" for k, n in sorted(enrichment.items())))
