import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from worker.config import load_settings
from worker.local.stack import LocalStack, StackError


@pytest.fixture
def stack(tmp_path: Path) -> LocalStack:
    stack = LocalStack(load_settings(stack_dir=tmp_path / "stack"))
    stack.run_dir.mkdir(parents=True)
    return stack


def _record_pid(stack: LocalStack, server_name: str, pid: int, create_time: float) -> Path:
    pid_file = stack.run_dir / f"{server_name}.pid"
    pid_file.write_text(json.dumps({"pid": pid, "create_time": create_time}))
    return pid_file


def test_stack_refuses_to_serve_on_a_non_loopback_address(tmp_path: Path) -> None:
    settings = load_settings(stack_dir=tmp_path, kafka_bootstrap_servers="10.0.0.5:9092")
    with pytest.raises(StackError, match="SLUICE_KAFKA_BOOTSTRAP_SERVERS"):
        LocalStack(settings).servers()


def test_servers_bind_loopback_and_seaweedfs_telemetry_is_off(stack: LocalStack) -> None:
    noida, seaweed, postgres = stack.servers()
    assert noida.command[noida.command.index("--host") + 1] == "127.0.0.1"
    if postgres.command:  # where Debian's postgresql is installed
        assert postgres.command[postgres.command.index("-h") + 1] == "127.0.0.1"
    assert "-master.telemetry=false" in seaweed.command
    assert "-master.volumeSizeLimitMB=64" in seaweed.command
    assert "-ip.bind=127.0.0.1" in seaweed.command


def test_ports_come_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        stack_dir=tmp_path,
        kafka_bootstrap_servers="127.0.0.1:19092",
        elasticsearch_url="http://127.0.0.1:19200",
        s3_endpoint_url="http://localhost:18000",
        iceberg_catalog_uri="postgresql+psycopg2://sluice@127.0.0.1:15433/iceberg",
    )
    noida, seaweed, postgres = LocalStack(settings).servers()
    assert [probe.address for probe in postgres.probes] == ["127.0.0.1:15433"]
    assert {"19092", "19200"} <= set(noida.command)
    assert "-s3.port=18000" in seaweed.command
    assert [probe.address for probe in seaweed.probes] == ["http://127.0.0.1:18000"]


def test_stale_pid_file_is_removed_and_its_pid_left_alone(stack: LocalStack) -> None:
    # Our own pid, but with another start time: a reused pid, not a server we started.
    pid_file = _record_pid(stack, "noida", os.getpid(), create_time=12345.0)
    noida = stack.servers()[0]
    assert stack.owned_process(noida) is None
    assert not pid_file.exists()
    assert psutil.pid_exists(os.getpid())


def test_down_stops_only_the_processes_recorded_as_ours(stack: LocalStack) -> None:
    ours = subprocess.Popen(["sleep", "60"])
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        _record_pid(stack, "noida", ours.pid, psutil.Process(ours.pid).create_time())
        # A pid file naming the stranger's pid with a wrong start time must not get it killed.
        _record_pid(stack, "seaweedfs", stranger.pid, create_time=1.0)
        messages: list[str] = []
        stack.down(log=messages.append)
        assert ours.wait(timeout=10) is not None
        time.sleep(0.1)
        assert stranger.poll() is None
        assert any("noida: stopped" in m for m in messages)
        assert any("seaweedfs: not running" in m for m in messages)
        assert list(stack.run_dir.iterdir()) == []
    finally:
        ours.kill()
        stranger.kill()
        ours.wait()
        stranger.wait()


def test_down_with_nothing_running_is_harmless(stack: LocalStack) -> None:
    messages: list[str] = []
    stack.down(log=messages.append)
    stack.down(log=messages.append)
    assert all("not running" in m for m in messages)
