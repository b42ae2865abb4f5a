"""The benchmark's table (terminal and README) and its JSON."""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil

from bench.runners import Result, Scenario

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def _same_job(a: Scenario, b: Scenario) -> bool:
    # Scenarios with settings of their own (the memory run) have no Quix Streams twin.
    return (a.sinks, a.null_elasticsearch, a.partitions, a.workers, a.settings, a.events) == (
        b.sinks, b.null_elasticsearch, b.partitions, b.workers, b.settings, b.events)


def _to_elasticsearch(scenario: Scenario) -> bool:
    return "elasticsearch" in scenario.sinks and not scenario.null_elasticsearch


def rows(results: list[Result]) -> list[dict[str, Any]]:
    """One row per scenario with its ratios against the raw baseline, Quix Streams and, for
    rows that write to the ES-API server, the plain bulk loader. A failed scenario's row has
    no rate and no ratios, and its error as the note; ratios against a failed system are
    omitted."""
    loader = next((r for r in results if r.scenario.system == "bulk" and not r.error), None)
    table = []
    for result in results:
        if result.error:
            table.append(_failed_row(result))
            continue
        if result.peak_rss_mib <= 0:
            raise ValueError(f"{result.scenario.name}: no peak RSS was measured")
        # The baseline that read the same number of events (the long scenarios have their own).
        baseline = next((r for r in results if r.scenario.system == "raw" and not r.error
                         and r.events == result.events), None)
        quix = next((r for r in results if r.scenario.system == "quix" and not r.error
                     and _same_job(r.scenario, result.scenario)), None)
        table.append({
            "scenario": result.scenario.name,
            "system": result.scenario.system,
            "sinks": list(result.scenario.sinks),
            "partitions": result.scenario.partitions,
            "workers": result.scenario.workers,
            "events": result.events,
            "seconds": round(result.seconds, 2),
            "events_per_second": round(result.events_per_second),
            "vs_baseline": (round(result.events_per_second / baseline.events_per_second, 3)
                            if baseline else None),
            "vs_quix": (round(result.events_per_second / quix.events_per_second, 2)
                        if quix and result.scenario.system != "quix" else None),
            "vs_bulk_loader": (
                round(result.events_per_second / loader.events_per_second, 2)
                if loader and _to_elasticsearch(result.scenario)
                and result.scenario.system not in ("bulk", "raw") else None),
            "peak_rss_mib": round(result.peak_rss_mib, 1),
            "delivered": result.delivered,
            "dead_letters": result.dead_letters,
            "s3_bytes_per_event": (round(result.s3_bytes / result.events, 1)
                                   if result.s3_bytes and result.events else None),
            "runs": [round(rate) for rate in result.rates] or [round(result.events_per_second)],
            "files_per_hour": (round(result.files_per_hour, 1)
                               if result.files_per_hour is not None else None),
            "note": _note(result),
        })
    return table


def _failed_row(result: Result) -> dict[str, Any]:
    scenario = result.scenario
    return {"scenario": scenario.name, "system": scenario.system, "sinks": list(scenario.sinks),
            "partitions": scenario.partitions, "workers": scenario.workers,
            "events": result.events, "seconds": None, "events_per_second": None,
            "vs_baseline": None, "vs_quix": None, "vs_bulk_loader": None,
            "peak_rss_mib": round(result.peak_rss_mib, 1) or None, "delivered": {},
            "dead_letters": 0, "s3_bytes_per_event": None, "runs": [],
            "error": result.error, "note": f"FAILED: {result.error}"}


def _note(result: Result) -> str:
    parts = []
    if len(result.rates) >= 2:
        parts.append(f"median of {len(result.rates)} runs "
                     f"({min(result.rates):,.0f}–{max(result.rates):,.0f} events/s)")
    if result.files_per_hour is not None:
        parts.append(f"{result.files_per_hour:,.1f} data files per hour partition")
    if result.scenario.note:
        parts.append(result.scenario.note)
    return "; ".join(parts)


def git_commit(repo: Path) -> str | None:
    """The checked-out commit, with `-dirty` when the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (an unpacked release)
    return f"{commit}-dirty" if dirty.strip() else commit


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform()}


def _ratio(value: float | None, suffix: str = "×") -> str:
    return f"{value:.2f}{suffix}" if value is not None else "–"


def _bytes(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "–"


def markdown(table: list[dict[str, Any]], events: int) -> str:
    lines = [
        f"{events:,} events (500–800 bytes, 7 in 10 Segment events, 3 in 10 access logs) unless "
        "the scenario names its own count (the long scenarios, each compared with the baseline "
        "of the same length), 4 partitions unless said otherwise, all servers on the same "
        "2-core machine.",
        "",
        "| scenario | events/s | vs raw baseline | vs Quix Streams | vs bulk loader "
        "| peak RSS (MiB) | S3 bytes/event | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in table:
        rate = row["events_per_second"]
        lines.append(
            f"| {row['scenario']} | {'failed' if rate is None else f'{rate:,}'} "
            f"| {_ratio(row['vs_baseline'])} "
            f"| {_ratio(row['vs_quix'])} | {_ratio(row.get('vs_bulk_loader'))} "
            f"| {_bytes(row['peak_rss_mib'])} | {_bytes(row.get('s3_bytes_per_event'))} "
            f"| {row['note'].replace('|', '/')} |")
    return "\n".join(lines)


def update_readme(readme: Path, text: str) -> None:
    """Replace the table between the README's bench markers."""
    content = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(content):
        raise ValueError(f"{readme} has no {README_START} … {README_END} section")
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{text}\n{README_END}", content))
