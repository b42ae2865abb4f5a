"""`sluice stack up | status | down` as a user runs them, on ports of its own."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from tests.support.paths import REPO_ROOT

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


def test_stack_up_twice_is_harmless_and_down_leaves_no_process() -> None:
    # Under the repository's .sluice/, like a user's stack: PostgreSQL runs as its own user when
    # we are root, and cannot enter pytest's private (0700) temporary directories.
    stack_dir = REPO_ROOT / ".sluice" / f"lifecycle-{uuid.uuid4().hex[:8]}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(
        SLUICE_STACK_DIR=str(stack_dir),
        SLUICE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:29092",
        SLUICE_ELASTICSEARCH_URL="http://127.0.0.1:29200",
        SLUICE_S3_ENDPOINT_URL="http://127.0.0.1:28333",
        SLUICE_ICEBERG_CATALOG_URI="postgresql+psycopg2://sluice@127.0.0.1:25433/iceberg",
    )
    try:
        first = _sluice(["stack", "up"], environment)
        assert first.returncode == 0, first.stderr
        for server in ("noida", "seaweedfs", "postgres"):
            assert f"{server}: started" in first.stdout, first.stdout
        started = _our_server_pids(stack_dir)
        assert len(started) == 3

        second = _sluice(["stack", "up"], environment)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert _our_server_pids(stack_dir) == started

        status = _sluice(["stack", "status"], environment)
        assert status.returncode == 0
        assert status.stdout.count("running") == 3
    finally:
        down = _sluice(["stack", "down"], environment)
    assert down.returncode == 0, down.stderr
    assert _our_server_pids(stack_dir) == set()
    assert "not running" in _sluice(["stack", "down"], environment).stdout
    assert _sluice(["stack", "status"], environment).returncode == 1
    shutil.rmtree(stack_dir, ignore_errors=True)
