"""The benchmark's repeated scenarios: the median run is reported, with every run's figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import markdown, rows
from bench.runners import Result, Scenario, ScenarioFailed, StallGuard, last_error, median_run

SCENARIO = Scenario("Sluice → S3", "sluice", ("s3",), runs=3, note="gzip NDJSON")


def result(seconds: float, rss: float = 300.0) -> Result:
    return Result(SCENARIO, 100_000, seconds, rss)


def test_the_median_run_is_chosen_and_keeps_every_runs_rate() -> None:
    chosen = median_run([result(2.5), result(5.0), result(2.0)])
    assert chosen.seconds == 2.5
    assert chosen.rates == (40_000.0, 20_000.0, 50_000.0)


def test_of_an_even_count_the_lower_middle_run_counts() -> None:
    assert median_run([result(2.0), result(4.0)]).seconds == 4.0


def test_the_table_notes_the_spread_of_repeated_runs() -> None:
    [row] = rows([median_run([result(2.5), result(5.0), result(2.0)])])
    assert row["events_per_second"] == 40_000
    assert row["runs"] == [40_000, 20_000, 50_000]
    assert row["note"] == "median of 3 runs (20,000–50,000 events/s); gzip NDJSON"


def test_a_single_run_keeps_its_note() -> None:
    [row] = rows([result(2.5)])
    assert row["note"] == "gzip NDJSON" and row["runs"] == [40_000]


def test_a_failed_run_fails_its_scenario_with_its_error() -> None:
    failed = Result.failed(SCENARIO, 100_000, "stalled: Invalid response size")
    chosen = median_run([result(2.5), failed, result(2.0)])
    [row] = rows([chosen])
    assert row["events_per_second"] is None and row["vs_baseline"] is None
    assert row["note"] == "FAILED: stalled: Invalid response size"
    assert "| Sluice → S3 | failed |" in markdown([row], 100_000)


def test_ratios_compare_runs_of_the_same_length_and_skip_failed_systems() -> None:
    long = 500_000
    baseline = Result(Scenario("raw", "raw", runs=3), 100_000, 0.5, 200.0)
    long_baseline = Result(Scenario("raw long", "raw", events=long), long, 2.0, 200.0)
    sluice = Result(Scenario("Sluice long", "sluice", ("s3",), events=long), long, 5.0, 300.0)
    quix = Result.failed(Scenario("Quix long", "quix", ("s3",), events=long), long, "boom")
    table = {row["scenario"]: row for row in rows([baseline, long_baseline, sluice, quix])}
    assert table["Sluice long"]["vs_baseline"] == 0.4
    assert table["Sluice long"]["vs_quix"] is None
    assert table["Quix long"]["note"] == "FAILED: boom"


def test_a_run_that_commits_nothing_more_fails_within_its_bound(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("started\n%3|ERROR|rdkafka#consumer-1| Invalid response size 273452084\n"
                   "still waiting\n")
    guard = StallGuard(60.0, [log])
    guard.saw(1000, now=0.0)
    guard.saw(900, now=50.0)  # progress resets the clock
    guard.saw(900, now=100.0)
    with pytest.raises(ScenarioFailed, match="Invalid response size 273452084"):
        guard.saw(900, now=111.0)


def test_an_iceberg_row_notes_its_data_files_per_hour() -> None:
    scenario = Scenario("Sluice → Iceberg", "sluice", ("iceberg",), note="a commit every 2 s")
    [row] = rows([Result(scenario, 100_000, 4.0, 300.0, files_per_hour=6.0)])
    assert row["files_per_hour"] == 6.0
    assert row["note"] == "6.0 data files per hour partition; a commit every 2 s"


def test_a_failed_run_names_the_error_under_its_heading(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("Invalid configuration:\n  SLUICE_ICEBERG_TABLE='x': String should match\n")
    assert last_error(log) == "Invalid configuration: SLUICE_ICEBERG_TABLE='x': String should match"
