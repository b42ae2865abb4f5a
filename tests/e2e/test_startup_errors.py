"""A worker that cannot start says why in one message naming the setting: no traceback."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.support.processes import SluiceProcess, run_sluice
from worker.config import Settings

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _exit(worker: SluiceProcess, timeout: float = 60.0) -> int:
    worker.process.wait(timeout=timeout)
    return worker.process.returncode


def test_unreachable_broker_is_awaited_then_named(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={
        "kafka_bootstrap_servers": f"127.0.0.1:{_free_port()}", "kafka_startup_timeout": 3.0})
    started = time.monotonic()
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    assert _exit(worker) == 1
    waited = time.monotonic() - started
    log = worker.log()
    assert "Traceback" not in log, log
    assert "SLUICE_KAFKA_BOOTSTRAP_SERVERS" in log and "within 3s" in log, log
    assert waited >= 3.0, f"exited after {waited:.1f}s, before the start-up timeout"


def test_web_port_in_use_is_one_line_naming_the_setting(settings: Settings,
                                                        tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = settings.model_copy(update={"web_host": "127.0.0.1", "web_port": port})
        worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
        assert _exit(worker) == 1
    log = worker.log()
    assert "Traceback" not in log, log
    (line,) = [line for line in log.splitlines() if line.startswith("error:")]
    assert f"port {port}" in line and "SLUICE_WEB_PORT" in line and "SLUICE_WEB_HOST" in line


def test_misspelled_variable_is_reported_at_start_with_the_closest_name(
    settings: Settings, tmp_path: Path
) -> None:
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log",
                           extra_environment={"SLUICE_ELASTICSERCH_URL": "http://x:1"})
    try:
        worker.wait_for_log(r"partitions assigned")
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    assert ("warning: SLUICE_ELASTICSERCH_URL is not a Sluice setting and is ignored (did you "
            "mean SLUICE_ELASTICSEARCH_URL?") in worker.log()


def _probe(url: str) -> tuple[int, bytes]:
    """Status and body of a GET; 0 while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def test_readiness_while_the_worker_starts_and_stops_is_a_503_saying_so_never_a_500(
    settings: Settings, tmp_path: Path
) -> None:
    # A Kubernetes readiness probe hits /health/ready from the moment the port answers, before
    # the sinks have their clients (issue 26: 500 and an AssertionError traceback per probe).
    port = _free_port()
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch"], "web_host": "127.0.0.1", "web_port": port})
    url = f"http://127.0.0.1:{port}/health/ready"
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log")
    answers: list[tuple[int, bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.process.poll() is None:
            status, body = _probe(url)
            if status:
                answers.append((status, body))
            if status == 200:
                break
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    assert answers and answers[-1][0] == 200, (answers[-3:], worker.log()[-3000:])
    unready = [orjson.loads(body)["problems"] for status, body in answers if status == 503]
    assert all(status in (200, 503) for status, _ in answers), answers[:3]
    assert unready and unready[0] == {
        "starting": "the worker is starting: the catalog and the sinks are not started yet"}
    assert "Traceback" not in worker.log(), worker.log()


def test_an_s3_endpoint_that_is_no_url_stops_the_worker_naming_the_setting(
    tmp_path: Path,
) -> None:
    # Issue 26: botocore refused it when the sink started, a traceback of 66 lines.
    result = run_sluice(["worker"], {"SLUICE_S3_ENDPOINT_URL": "not-a-url"}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "Invalid configuration:",
        "  SLUICE_S3_ENDPOINT_URL='not-a-url': not an http:// or https:// URL "
        "(e.g. https://host:port)"]


def test_a_refused_elasticsearch_url_is_echoed_without_its_password(tmp_path: Path) -> None:
    result = run_sluice(["worker"], {"SLUICE_ELASTICSEARCH_URL": "https://elastic:pa/ss@es:9200"},
                        tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pa/ss" not in result.stderr and "elastic:" not in result.stderr, result.stderr
    assert "SLUICE_ELASTICSEARCH_URL='https://***@es:9200': the port is not a number" \
        in result.stderr


def test_sluice_settings_shows_no_password_of_any_url_and_no_stars_for_unset_secrets(
    tmp_path: Path,
) -> None:
    result = run_sluice(["settings"], {
        "SLUICE_ELASTICSEARCH_URL": "https://elastic:p@ss@es1:9200,https://es2:9200",
        "SLUICE_S3_ENDPOINT_URL": "https://key:s3cret@s3.example.com",
        "SLUICE_KAFKA_SASL_PASSWORD": "kafka-secret",
    }, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "SLUICE_ELASTICSEARCH_URL=https://***@es1:9200,https://es2:9200" in lines
    assert "SLUICE_S3_ENDPOINT_URL=https://***@s3.example.com" in lines
    assert "SLUICE_KAFKA_SASL_PASSWORD=***" in lines
    assert "SLUICE_INGEST_BEARER_TOKENS=  # unset" in lines
    assert "ss@" not in result.stdout and "s3cret" not in result.stdout


def test_log_lines_and_the_error_line_show_no_password_of_the_elasticsearch_url(
    settings: Settings, tmp_path: Path
) -> None:
    # Nothing answers there: the worker waits (logging), then stops with one line.
    settings = settings.model_copy(update={
        "sinks": ["elasticsearch"], "elasticsearch_startup_timeout": 2.0,
        "elasticsearch_url": f"http://elastic:p@ss@127.0.0.1:{_free_port()}"})
    worker = SluiceProcess(settings, ["worker"], tmp_path / "worker.log",
                           extra_environment={"SLUICE_LOG_LEVEL": "DEBUG"})
    assert _exit(worker) == 1
    log = worker.log()
    assert "Traceback" not in log, log
    assert "http://***@127.0.0.1" in log, log
    assert "elastic:p" not in log and "ss@" not in log, log


@pytest.mark.parametrize("where", ["under-a-file", "/sys/sluice-state"])
def test_a_state_dir_that_cannot_be_written_stops_the_worker_in_one_line(
    settings: Settings, tmp_path: Path, where: str
) -> None:
    # Issue 26: the app's start raised from mkdir, a traceback.
    (tmp_path / "a-file").write_text("")
    state_dir = tmp_path / "a-file" / "state" if where == "under-a-file" else Path(where)
    worker = SluiceProcess(settings.model_copy(update={"state_dir": state_dir}), ["worker"],
                           tmp_path / "worker.log")
    assert _exit(worker) == 2
    log = worker.log()
    assert "Traceback" not in log, log
    (line,) = log.splitlines()
    assert line.startswith(f"error: SLUICE_STATE_DIR='{state_dir}' cannot be created"), line
