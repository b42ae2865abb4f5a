"""Helpers to run `sluice` commands as real processes and read what they log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from worker.config import Settings
from worker.kafka.group_offsets import group_progress


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_sluice(args: list[str], environment: dict[str, str], cwd: Path,
               timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker <args>` to its end with only these SLUICE_* variables (the rest of
    this process's environment, PYTHONPATH included, is kept; no `.env` is read: `cwd` should
    be a test's own directory)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    full.update(environment)
    return subprocess.run([sys.executable, "-m", "worker", *args], env=full, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


class SluiceProcess:
    """A `python -m worker …` process with the given settings, logging to a file."""

    def __init__(self, settings: Settings, args: list[str], log_path: Path,
                 extra_environment: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        environment.update(settings.as_environment())
        environment.update(extra_environment or {})
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait until a log line matches; fail with the log's tail if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"no log line matching {pattern!r} (exit code {self.process.poll()}); "
            f"log tail:\n{self.log()[-3000:]}"
        )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL and -9 if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


async def wait_for_no_lag(settings: Settings, *workers: SluiceProcess,
                          timeout: float = 120.0) -> None:
    """Wait until the group has committed every record of the source topic; every worker
    must stay alive meanwhile (its log tail is the failure message if one exits)."""
    deadline = time.monotonic() + timeout
    progress: list = []
    while time.monotonic() < deadline:
        progress = await group_progress(settings, settings.source_topic)
        if progress and all(p.lag == 0 for p in progress):
            return
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
        await asyncio.sleep(0.5)
    raise AssertionError(f"workers still lag after {timeout:.0f}s: {progress}\n"
                         + "\n".join(worker.log()[-1500:] for worker in workers))
