"""Spool directories: a dead worker's are removed at the next start, a live worker's kept."""

import fcntl
import os
from pathlib import Path

from worker.sinks.s3.spool import LOCK_NAME, claim_spool_directory


def _worker_directory(root: Path, name: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "part-0.gz").write_bytes(b"x" * 4096)
    (directory / LOCK_NAME).touch()
    return directory


def test_a_start_removes_the_directories_of_dead_workers_and_keeps_live_ones(
    tmp_path: Path,
) -> None:
    killed = _worker_directory(tmp_path, "killed")  # its lock file is there, nobody holds it
    live = _worker_directory(tmp_path, "live")
    held = os.open(live / LOCK_NAME, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the live worker's process does
    starting = tmp_path / "starting"
    starting.mkdir()  # another worker between creating its directory and locking it
    try:
        spool = claim_spool_directory(tmp_path / "mine")
        assert not killed.exists()
        assert (live / "part-0.gz").exists() and starting.exists()
        assert spool.path.is_dir()
        spool.release()
        assert not (tmp_path / "mine").exists()
    finally:
        os.close(held)


def test_a_restarted_worker_cleans_up_after_the_one_it_replaces(tmp_path: Path) -> None:
    first = claim_spool_directory(tmp_path / "first")
    (first.path / "part.gz").write_bytes(b"y" * 100)
    os.close(first._lock)  # the process dies (SIGKILL): the kernel drops its lock
    second = claim_spool_directory(tmp_path / "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]
    second.release()
