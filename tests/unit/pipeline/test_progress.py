from worker.pipeline.progress import Progress


def test_progress_line_reports_totals_and_increments_since_last_line() -> None:
    progress = Progress()
    assert progress.line().startswith("idle")
    progress.add("consumed", 5)
    assert "consumed=5 (+5," in progress.line()
    progress.add("consumed", 2)
    assert "consumed=7 (+2," in progress.line()


def test_json_log_lines_carry_extra_fields_and_no_secret_settings() -> None:
    import logging

    import orjson

    from worker.config import load_settings
    from worker.ops.logs import JsonFormatter

    record = logging.LogRecord("worker.s3", logging.INFO, __file__, 1, "wrote %s", ("k",), None)
    record.object_key = "year=2026/x.ndjson.gz"
    record.partition = 3
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "wrote k"
    assert (line["object_key"], line["partition"], line["level"]) == (
        "year=2026/x.ndjson.gz", 3, "INFO")
    assert "devsecret" not in repr(load_settings(aws_secret_access_key="devsecret"))
