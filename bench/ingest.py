"""`python -m bench.ingest`: a bounded load run of `sluice ingest` on loopback.

Starts `sluice ingest` (a real process, transactions with acks=all to the local stack's broker)
on a topic of its own and sends it requests from N concurrent clients, per scenario until a
request count or a time limit is reached, whichever comes first. Request bodies and signatures
are prepared before the clock starts, so the figures are the server's (and the broker's):
requests/s, events/s and p50/p99 latency from sending a request to its answer.

The hostile scenario (``--hostile``, on by default) then measures the legitimate senders twice in
the same run: alone, and while ``bench.hostile``'s attack runs (500 slowloris connections, 50
bodies of 15 MiB, 200 unreadable headers, a failed-auth burst), with the server's peak RSS in
each phase. At the end the topic must hold exactly the events of the requests answered 200
(counted as a read_committed reader sees them). Not part of `make test` (timing on a shared
machine).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil
import typer

from bench.__main__ import BENCH_STACK_DIR
from bench.events import bench_events
from bench.hostile import Attack, AttackReport, run_attack
from bench.measure import count_records
from bench.runners import REPO_ROOT, free_port
from worker.config import IngestForm, Settings, load_settings
from worker.ingest.auth import segment_signature
from worker.kafka.topics import ensure_topics
from worker.local.stack import LocalStack

SECRET, ACCESS_KEY, TOKEN = "bench-secret", "bench-key", "bench-token"
BASELINE_SECONDS = 12.0  # the hostile scenario's legitimate senders alone
WRITE_KEY = "bench-write-key"
WRITE_KEY_AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

Request = tuple[str, bytes, dict[str, str], int]  # path, body, headers, events


@dataclass
class Scenario:
    """One kind of request, repeated."""

    name: str
    form: str  # segment | firehose | ndjson | tracking
    events_per_request: int
    gzipped: bool = False


@dataclass
class Result:
    """What one scenario measured."""

    name: str
    requests: int
    events: int
    seconds: float
    requests_per_second: float
    events_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class HostilePhase:
    """The legitimate senders in one phase of the hostile scenario."""

    phase: str
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    peak_rss_mib: float
    statuses: dict[str, int] = field(default_factory=dict)


SCENARIOS = [
    Scenario("Segment, 1 event per request", "segment", 1),
    Scenario("Segment batch, 20 events", "segment", 20),
    Scenario("Firehose, 100 records, gzip", "firehose", 100, gzipped=True),
    Scenario("NDJSON, 100 events", "ndjson", 100),
    Scenario("Tracking API /v1/batch, 100 events", "tracking", 100),
]


def _events(count: int) -> tuple[list[dict], list[dict]]:
    """(Segment events, all events) of the benchmark's realistic traffic."""
    every = [orjson.loads(value) for _, value in bench_events(count)]
    return [event for event in every if "type" in event], every


def _request(scenario: Scenario, segment: list[dict], every: list[dict], n: int) -> Request:
    size = scenario.events_per_request
    if scenario.form == "segment":
        chosen = [segment[(n * size + i) % len(segment)] for i in range(size)]
        body = orjson.dumps(chosen[0] if size == 1 else {"batch": chosen})
        return "/segment", body, {"X-Signature": segment_signature(SECRET, body)}, size
    if scenario.form == "tracking":  # as Segment's libraries send it
        chosen = [segment[(n * size + i) % len(segment)] for i in range(size)]
        body = orjson.dumps({"batch": chosen, "sentAt": "2026-11-22T20:31:05.000Z",
                             "context": {"library": {"name": "analytics-python"}}})
        return "/v1/batch", body, {"Authorization": WRITE_KEY_AUTH}, size
    chosen = [every[(n * size + i) % len(every)] for i in range(size)]
    if scenario.form == "ndjson":
        body = b"".join(orjson.dumps(event) + b"\n" for event in chosen)
        return "/events", body, {"Authorization": f"Bearer {TOKEN}"}, size
    body = orjson.dumps({"requestId": f"r{n}", "timestamp": 0, "records": [
        {"data": base64.b64encode(orjson.dumps(event) + b"\n").decode()} for event in chosen]})
    headers = {"X-Amz-Firehose-Access-Key": ACCESS_KEY}
    if scenario.gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return "/firehose", body, headers, size


def _percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


async def _run(scenario: Scenario, url: str, requests: list[Request], concurrency: int,
               seconds: float, stop: asyncio.Event | None = None) -> tuple[Result, int]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    accepted_events = 0
    next_index = 0
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, accepted_events
        while (next_index < len(requests) and time.monotonic() < deadline
               and not (stop and stop.is_set())):
            path, body, headers, events = requests[next_index]
            next_index += 1
            sent = time.perf_counter()
            async with session.post(url + path, data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - sent)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            if response.status == 200:
                accepted_events += events

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    result = Result(scenario.name, len(latencies), accepted_events, round(elapsed, 2),
                    round(len(latencies) / elapsed, 1), round(accepted_events / elapsed, 1),
                    round(_percentile(ordered, 0.50) * 1000, 1),
                    round(_percentile(ordered, 0.99) * 1000, 1), statuses)
    return result, accepted_events


def _start_ingest(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(settings.as_environment())
    with log_path.open("ab") as log_file:
        return subprocess.Popen([sys.executable, "-m", "worker", "ingest"], env=environment,
                                stdout=log_file, stderr=subprocess.STDOUT)


async def _wait_ready(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                break
            try:
                async with session.get(f"http://127.0.0.1:{port}/health/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"sluice ingest did not become ready: see {log_path}")


async def _peak_rss(process: psutil.Process, stop: asyncio.Event) -> float:
    """The process's largest RSS (MiB) sampled until `stop`."""
    peak = 0
    while not stop.is_set():
        peak = max(peak, process.memory_info().rss)
        await asyncio.sleep(0.1)
    return round(peak / 2**20, 1)


async def _phase(name: str, url: str, prepared: list[Request], concurrency: int,
                 process: psutil.Process, seconds: float, attack: Attack | None,
                 port: int) -> tuple[HostilePhase, int, AttackReport | None]:
    """The legitimate senders for `seconds`, or for as long as `attack` runs."""
    stop = asyncio.Event()
    rss = asyncio.create_task(_peak_rss(process, stop))
    report = AttackReport() if attack else None
    scenario = Scenario(name, "segment", 1)
    sending = asyncio.create_task(_run(scenario, url, prepared, concurrency, 3600, stop))
    if attack is not None and report is not None:
        await run_attack(port, attack, report)
    else:
        await asyncio.sleep(seconds)
    stop.set()
    result, events = await sending
    phase = HostilePhase(name, result.requests, result.seconds, result.requests_per_second,
                         result.p50_ms, result.p99_ms, await rss, result.statuses)
    return phase, events, report


async def hostile(url: str, port: int, process: psutil.Process, concurrency: int,
                  segment: list[dict], every: list[dict], say: Callable[[str], None]
                  ) -> tuple[list[HostilePhase], int]:
    """Single Segment events from the legitimate senders, without and then with the attack."""
    scenario = Scenario("hostile", "segment", 1)
    prepared = [_request(scenario, segment, every, n) for n in range(60_000)]
    phases, accepted = [], 0
    alone, events, _ = await _phase("without the attack", url, prepared[:30_000], concurrency,
                                    process, BASELINE_SECONDS, None, port)
    phases.append(alone)
    accepted += events
    attacked, events, report = await _phase("with the attack", url, prepared[30_000:],
                                            concurrency, process, 0, Attack(), port)
    phases.append(attacked)
    accepted += events
    for phase in phases:
        say(f"hostile, {phase.phase:<20} {phase.requests:>6} requests {phase.seconds:5.1f}s "
            f"{phase.requests_per_second:>8,.0f} req/s  p50 {phase.p50_ms:6.1f} ms  "
            f"p99 {phase.p99_ms:6.1f} ms  peak RSS {phase.peak_rss_mib:.0f} MiB  "
            f"{phase.statuses}")
    if report is not None:
        say(f"the attack got: {report.summary()}")
    return phases, accepted


async def bench(settings: Settings, scenarios: list[Scenario], requests: int, seconds: float,
                concurrency: int, say: Callable[[str], None], with_hostile: bool = True
                ) -> tuple[list[Result], list[HostilePhase]]:
    """Run every scenario against one `sluice ingest`; check the topic holds what was accepted."""
    await ensure_topics(settings)
    work = REPO_ROOT / ".sluice" / "bench-ingest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_path = work / "ingest.log"
    process = _start_ingest(settings, log_path)
    results: list[Result] = []
    phases: list[HostilePhase] = []
    accepted = 0
    try:
        await _wait_ready(settings.web_port, process, log_path)
        cpu_before = psutil.Process(process.pid).cpu_times()
        url = f"http://127.0.0.1:{settings.ingest_port}"
        segment, every = _events(20_000)
        for scenario in scenarios:
            prepared = [_request(scenario, segment, every, n) for n in range(requests)]
            result, events = await _run(scenario, url, prepared, concurrency, seconds)
            accepted += events
            results.append(result)
            say(f"{result.name:<32} {result.requests:>6} requests {result.seconds:5.1f}s "
                f"{result.requests_per_second:>8,.0f} req/s {result.events_per_second:>9,.0f} "
                f"events/s  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
                f"{result.statuses}")
        ingest = psutil.Process(process.pid)
        if with_hostile:
            phases, events = await hostile(url, settings.ingest_port, ingest, concurrency,
                                           segment, every, say)
            accepted += events
        cpu = ingest.cpu_times()
        used = cpu.user + cpu.system - cpu_before.user - cpu_before.system
        say(f"sluice ingest used {used:.1f} CPU seconds; RSS at the end "
            f"{ingest.memory_info().rss / 2**20:.0f} MiB")
    finally:
        process.terminate()
        process.wait(timeout=30)
    on_topic = await count_records(settings.kafka_bootstrap_servers, settings.source_topic)
    say(f"topic {settings.source_topic}: {on_topic} records, {accepted} events accepted")
    if on_topic != accepted:
        raise RuntimeError(f"the topic holds {on_topic} records, {accepted} were accepted")
    return results, phases


def markdown(results: list[Result], concurrency: int,
             phases: list[HostilePhase] | None = None) -> str:
    """The results as the README's tables."""
    lines = [f"{concurrency} concurrent clients on loopback, one `sluice ingest` process, "
             "transactions with acks=all to the local stack's broker, all on the same 2-core "
             "machine.", "",
             "| scenario | requests | requests/s | events/s | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.requests:,} | {r.requests_per_second:,.0f} | "
              f"{r.events_per_second:,.0f} | {r.p50_ms} | {r.p99_ms} |" for r in results]
    if phases:
        lines += ["", "Hostile scenario: the same legitimate senders (single Segment events), "
                  "without and with the attack of `bench/hostile.py` in the same run.", "",
                  "| legitimate senders | requests | requests/s | p50 ms | p99 ms | "
                  "answers | peak RSS MiB |", "|---|---:|---:|---:|---:|---|---:|"]
        lines += [f"| {p.phase} | {p.requests:,} | {p.requests_per_second:,.0f} | {p.p50_ms} | "
                  f"{p.p99_ms} | {_answers(p.statuses)} | {p.peak_rss_mib:.0f} |"
                  for p in phases]
    return "\n".join(lines)


def _answers(statuses: dict[str, int]) -> str:
    return ", ".join(f"{count:,}× {status}" for status, count in sorted(statuses.items()))


def main(
    requests: int = typer.Option(3000, min=1, help="At most this many requests per scenario."),
    seconds: float = typer.Option(20.0, min=1, help="At most this long per scenario."),
    concurrency: int = typer.Option(32, min=1, help="Concurrent clients (connections)."),
    only: str = typer.Option("", help="Only scenarios whose name contains this (any case)."),
    with_hostile: bool = typer.Option(True, "--hostile/--no-hostile",
                                      help="Also the legitimate senders with and without an "
                                      "attack (about 30 s more)."),
    json_out: Path = typer.Option(REPO_ROOT / "bench" / "results" / "ingest.json", "--json",
                                  help="Where the results are written as JSON."),
) -> None:
    """Load `sluice ingest` on loopback: requests/s, events/s, p50/p99 latency."""
    run_id = time.strftime("%m%d%H%M%S")
    settings = load_settings(
        stack_dir=BENCH_STACK_DIR, source_topic=f"bench-ingest-{run_id}",
        ingest_host="127.0.0.1", ingest_port=free_port(), web_host="127.0.0.1",
        web_port=free_port(), ingest_segment_shared_secret=SECRET,
        ingest_firehose_access_key=ACCESS_KEY, ingest_bearer_tokens=[TOKEN],
        ingest_forms=list(IngestForm), ingest_write_keys=[f"{WRITE_KEY}=bench-source"],
        # The bench measures the door, not the write keys' rate limits (all of its clients
        # share one key and one address).
        ingest_credential_rate=1e9, ingest_credential_burst=10**9, ingest_client_rate=1e9,
        ingest_client_burst=10**9, ingest_trusted_proxies=["127.0.0.1"], log_level="WARNING")
    chosen = [s for s in SCENARIOS if only.lower() in s.name.lower()]
    stack = LocalStack(settings)
    started_stack = any(server.down_services for server in stack.status())
    if started_stack:
        stack.up()
    try:
        results, phases = asyncio.run(bench(settings, chosen, requests, seconds, concurrency,
                                            typer.echo, with_hostile))
    finally:
        if started_stack:
            stack.down()
    text = markdown(results, concurrency, phases)
    typer.echo("\n" + text)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_bytes(orjson.dumps({"concurrency": concurrency, "requests": requests,
                                       "seconds": seconds,
                                       "results": [asdict(r) for r in results],
                                       "hostile": [asdict(p) for p in phases]},
                                      option=orjson.OPT_INDENT_2))
    typer.echo(f"\nJSON: {json_out}")


if __name__ == "__main__":
    typer.run(main)
