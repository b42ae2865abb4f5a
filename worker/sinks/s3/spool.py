"""Spool directories: each worker process's own, locked while it runs, cleaned once it is gone.

The S3 sink spools its open parts to local gzip files under ``<SLUICE_STATE_DIR>/s3-spool/<id>``
(one directory per process, since several workers may share a state directory). A worker that
stops cleanly removes its directory; one that is killed (SIGKILL, OOM, a node drain past its
grace period) leaves it behind, and a restarted container that keeps its volume would fill the
disk with dead parts, one directory per crash.

What a dead worker spooled is never needed again: its records were not committed, so the
partitions' next owner consumes and writes them anew. So every process holds an exclusive
``flock`` on a lock file inside its directory for as long as it runs (the kernel releases it
when the process dies, however it dies), and a starting process removes every sibling whose
lock it can take. A live worker's lock cannot be taken, so its directory is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".owner.lock"
# A directory without a lock file is a worker's that is starting right now (it creates the
# directory, then the lock) or one of a Sluice before locks: only the latter is ever this old.
UNLOCKED_GRACE_SECONDS = 300.0


class SpoolDirectory:
    """This process's spool directory, locked until `release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        """Remove the directory and let go of its lock (a clean stop)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def claim_spool_directory(path: Path) -> SpoolDirectory:
    """Create and lock `path`, after removing the abandoned spool directories beside it."""
    spool = SpoolDirectory(path)
    removed, freed = remove_abandoned(path.parent, keep=path)
    if removed:
        log.info("removed %d spool directories of workers that are gone (%.1f MiB) under %s",
                 removed, freed / 1048576, path.parent)
    return spool


def remove_abandoned(root: Path, keep: Path) -> tuple[int, int]:
    """Remove the directories under `root` (but `keep`) whose owner is gone; return how many,
    and how many bytes they held."""
    removed = freed = 0
    for child in root.iterdir():
        if child == keep or not child.is_dir():
            continue
        size = _abandoned_size(child)
        if size is not None:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
            freed += size
    return removed, freed


def _abandoned_size(directory: Path) -> int | None:
    """The bytes in `directory` if no live process owns it (removing it is safe); else None."""
    try:
        lock = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        try:
            age = time.time() - directory.stat().st_mtime
        except FileNotFoundError:
            return None  # removed meanwhile
        return _size(directory) if age > UNLOCKED_GRACE_SECONDS else None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None  # its worker is alive
    finally:
        os.close(lock)  # also lets go of the lock, if taken: the directory is removed next
    return _size(directory)


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
