"""The benchmark's repeated scenarios: the median run is reported, with every run's figure."""

from __future__ import annotations

from bench.report import rows
from bench.runners import Result, Scenario, median_run

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
