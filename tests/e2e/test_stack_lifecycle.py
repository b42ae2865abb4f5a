"""`sluice stack up | status | down` as a user runs them, on ports of its own."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def _sluice(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _our_server_pids(stack_dir: Path) -> set[int]:
    """Processes whose command line mentions this stack's data directory."""
    pids = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(str(stack_dir) in part for part in process.info["cmdline"] or ()):
            pids.add(process.info["pid"])
    return pids


def test_stack_up_twice_is_harmless_and_down_leaves_no_process(tmp_path: Path) -> None:
    stack_dir = tmp_path / "stack"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(
        SLUICE_STACK_DIR=str(stack_dir),
        SLUICE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:29092",
        SLUICE_ELASTICSEARCH_URL="http://127.0.0.1:29200",
        SLUICE_S3_ENDPOINT_URL="http://127.0.0.1:28333",
    )
    try:
        first = _sluice(["stack", "up"], environment)
        assert first.returncode == 0, first.stderr
        assert "noida: started" in first.stdout and "seaweedfs: started" in first.stdout
        started = _our_server_pids(stack_dir)
        assert len(started) == 2

        second = _sluice(["stack", "up"], environment)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert _our_server_pids(stack_dir) == started

        status = _sluice(["stack", "status"], environment)
        assert status.returncode == 0
        assert status.stdout.count("running") == 2
    finally:
        down = _sluice(["stack", "down"], environment)
    assert down.returncode == 0, down.stderr
    assert _our_server_pids(stack_dir) == set()
    assert "not running" in _sluice(["stack", "down"], environment).stdout
    assert _sluice(["stack", "status"], environment).returncode == 1
