"""`python -m bench.gil_profile`: a worker's GIL time per event, by stage (issue 30's target).

Produces the benchmark's events (500,000 by default, the long scenario's count) to a topic of
its own, starts one `sluice worker` → S3 on it and, from its first consumed record until its
group has committed every record, samples it with `py-spy record --gil`. py-spy then records
only the thread holding the GIL, so the samples add up to what the worker's Python costs,
whichever thread pays it (the event loop's or Faust's consumer thread); waiting is not sampled.

Each sample is charged to a stage by the innermost Sluice frame on its stack (the table below);
every sample of another thread is Faust's consumer thread's (aiokafka's fetches and records), and
a stack of the event loop with no Sluice frame is its own work (Faust, mode, asyncio). Sampling
at 250 Hz, a run of ~20 s has ~5,000 samples: stages under 0.2 µs an event are noise. Run it on
a quiet machine: a thread that holds the GIL while the OS runs another process is still charged.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import typer

from bench.__main__ import _bench_settings, _prepare, bench_stack
from bench.measure import CommitWatch, scrape, wait_until
from bench.runners import REPO_ROOT, BenchContext, Scenario, free_port, sluice_settings
from worker.kafka.topics import ensure_topics
from worker.local.demo import start_worker, stop_worker

# (path inside worker/, function or None for any) → stage; the first rule that matches the
# innermost Sluice frame wins.
STAGES: tuple[tuple[str, str | None, str], ...] = (
    ("events/json_codec.py", "loads", "decode"),
    ("events/json_codec.py", None, "encode"),
    ("events/decoding.py", None, "decode"),
    ("events/cloudwatch.py", None, "decode"),
    ("events/", None, "normalise"),
    ("catalog/", None, "enrich"),
    ("pipeline/preparation.py", None, "preparation (ids, encoding, per batch)"),
    ("sinks/s3/", None, "S3 sink (filing, gzip, upload)"),
    ("sinks/", None, "other sinks"),
    ("pipeline/", None, "routing and settlement"),
    ("kafka/", None, "batch hand-over (Sluice's consumer code)"),
    ("deadletters/", None, "dead letters"),
    ("ops/", None, "metrics and ops"),
    ("", None, "other Sluice code"),
)
CONSUMER_THREAD = "Faust's consumer thread (aiokafka)"
EVENT_LOOP = "event loop: Faust, mode, asyncio"


def stage_of(frames: list[dict], stack: list[int], main_thread: bool) -> str:
    """The stage a sampled stack (frame indices, root first) is charged to. Every sample of
    another thread is the consumer thread's (its fetches run through Sluice's fetch pacing)."""
    if not main_thread:
        return CONSUMER_THREAD
    for index in reversed(stack):
        frame = frames[index]
        path = frame.get("file", "")
        if "/worker/" not in path:
            continue
        inside = path.split("/worker/", 1)[1]
        for prefix, function, stage in STAGES:
            if inside.startswith(prefix) and (function is None or frame["name"] == function):
                return stage
    return EVENT_LOOP


def breakdown(speedscope: dict) -> Counter[str]:
    """Seconds of GIL time per stage in a py-spy speedscope file."""
    frames = speedscope["shared"]["frames"]
    seconds: Counter[str] = Counter()
    for profile in speedscope["profiles"]:
        main_thread = "MainThread" in profile["name"]
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            seconds[stage_of(frames, stack, main_thread)] += weight
    return seconds


async def _profile(events: int, rate: int, out: Path) -> float:
    settings = _bench_settings()
    run_id = time.strftime("gil%m%d%H%M%S")
    topics, ends = await _prepare(settings, run_id, {(4, events)}, typer.echo)
    work_dir = REPO_ROOT / ".sluice" / "bench-gil"
    ctx = BenchContext(run_id, settings, topics, ends, events, work_dir, "")
    scenario = Scenario("gil profile", "sluice", ("s3",), events=events)
    worker_settings = sluice_settings(ctx, scenario).model_copy(update={"web_port": free_port()})
    await ensure_topics(worker_settings)
    worker = start_worker(worker_settings, work_dir / "worker.log")
    spy: subprocess.Popen[bytes] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            async def consuming() -> bool:
                metrics = await scrape(session, worker_settings.web_port)
                return metrics.get("sluice_records_consumed_total", 0) > 0

            await wait_until(consuming, timeout=120)
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--gil",
                                "--nonblocking", "-r", str(rate), "-f", "speedscope",
                                "-o", str(out), "-p", str(worker.pid)])
        started = time.monotonic()
        async with CommitWatch(settings.kafka_bootstrap_servers, worker_settings.app_id,
                               ends[(4, events)]) as watch:
            async def committed() -> bool:
                return await watch.remaining() == 0

            await wait_until(committed, timeout=900, interval=0.1)
        elapsed = time.monotonic() - started
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=60)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop_worker(worker)
    return elapsed


def main(events: int = typer.Option(500_000, help="Events produced and consumed."),
         rate: int = typer.Option(250, help="py-spy samples per second."),
         out: Path = typer.Option(REPO_ROOT / "bench" / "results" / "gil.speedscope.json",
                                  help="Where py-spy's profile is kept (speedscope.app).")) -> None:
    """Profile one worker's GIL time per event on the long scenario's traffic."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Its own stack if none runs: `make bench` runs this after `python -m bench` stopped the
    # stack it had started (this profile then failed on a broker that was not there).
    with bench_stack():
        elapsed = asyncio.run(_profile(events, rate, out))
    seconds = breakdown(json.loads(out.read_text()))
    total = sum(seconds.values())
    typer.echo(f"\n{events:,} events in {elapsed:.1f}s; GIL held {total:.1f}s "
               f"= {total / events * 1e6:.1f} µs an event ({len(seconds)} stages)")
    for stage, spent in seconds.most_common():
        typer.echo(f"  {spent / events * 1e6:6.2f} µs  {100 * spent / total:5.1f}%  {stage}")


if __name__ == "__main__":
    typer.run(main)
