"""The demo's own steps: it says why its worker could not start, before producing anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.local.demo import DemoError, wait_until_started


def test_a_worker_that_stops_before_it_started_is_reported_with_its_error_line(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "worker.log"
    log_path.write_text("INFO starting\nerror: port 6066 on 0.0.0.0 for /metrics and /health is "
                        "already in use by pid 42 (sluice worker): set SLUICE_WEB_PORT\n")
    stopped = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    stopped.wait()
    with pytest.raises(DemoError) as error:
        wait_until_started(stopped, log_path, timeout=30)
    assert str(error.value) == (
        "the worker stopped (exit code 1) before it started: port 6066 on 0.0.0.0 for /metrics "
        "and /health is already in use by pid 42 (sluice worker): set SLUICE_WEB_PORT")


def test_a_worker_that_joined_its_group_has_started(tmp_path: Path) -> None:
    log_path = tmp_path / "worker.log"
    log_path.write_text("INFO partitions assigned: sluice-events[0,1]\n")
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_until_started(running, log_path, timeout=30)
    finally:
        running.kill()
        running.wait()
