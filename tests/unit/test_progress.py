from worker.progress import Progress


def test_progress_line_reports_totals_and_increments_since_last_line() -> None:
    progress = Progress()
    assert progress.line().startswith("idle")
    progress.add("consumed", 5)
    assert "consumed=5 (+5," in progress.line()
    progress.add("consumed", 2)
    assert "consumed=7 (+2," in progress.line()
