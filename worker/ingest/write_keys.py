"""Write keys name sources: which source a tracking API request's events come from.

As in Segment, a write key identifies a source (a website, an app, a backend); every document of
a request carries the source's id (``source_id``) and, if it has one, its name
(``source_name``). Several keys may name one source (rotation: add the new key, move the
clients, remove the old one).

Keys come from SLUICE_INGEST_WRITE_KEYS (``<key>=<source id>[:<name>]``, fixed until a restart)
and SLUICE_INGEST_WRITE_KEYS_FILE (one ``<key> <source id> [<name>]`` a line), which is read
again whenever it changes: at most once a second, when a request needs a key, its bytes are read
and compared with those in force (a file of keys is small; comparing its content, not its
modification time, sees every change, however quick). A file that cannot be read or has a bad line
keeps the keys it had (one warning per change); at start-up it stops the server instead.

Why a watched file and not entries on the catalog topic: write keys are secrets of the ingest
door only (the worker never needs them: the door stamps the source on each record), and a file
is how secrets reach a pod (a mounted Kubernetes Secret is updated in place, atomically, within
about a minute of ``kubectl apply``), with no Kafka consumer in `sluice ingest` and no secret in
a topic every worker and consumer reads.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.config import Settings

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Source:
    """The source a write key names."""

    source_id: str
    name: str | None = None


class WriteKeyError(Exception):
    """The write keys cannot be read; the message names the setting or the line."""


def parse_setting(entries: list[str]) -> dict[str, Source]:
    """SLUICE_INGEST_WRITE_KEYS's entries (validated by the settings model)."""
    keys = {}
    for entry in entries:
        key, _, source = entry.partition("=")
        source_id, _, name = source.partition(":")
        keys[key.strip()] = Source(source_id.strip(), name.strip() or None)
    return keys


def parse_file(text: str, path: Path) -> dict[str, Source]:
    """The lines of a write-key file; WriteKeyError naming the first bad line."""
    keys = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = content.split(None, 2)
        if len(parts) < 2:
            raise WriteKeyError(f"{path}:{number}: expected `<write key> <source id> [<source "
                                "name>]` (SLUICE_INGEST_WRITE_KEYS_FILE)")
        keys[parts[0]] = Source(parts[1], parts[2].strip() if len(parts) == 3 else None)
    return keys


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise WriteKeyError(f"cannot read {path} (SLUICE_INGEST_WRITE_KEYS_FILE): "
                            f"{error.strerror or error}") from None


def _parse(content: bytes, path: Path) -> dict[str, Source]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise WriteKeyError(f"{path} is not UTF-8 text (SLUICE_INGEST_WRITE_KEYS_FILE)") from None
    return parse_file(text, path)


class WriteKeys:
    """The write keys in force; `source_of` looks a key up, re-reading the file if it changed."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._fixed = parse_setting(settings.ingest_write_keys)
        self._path = settings.ingest_write_keys_file
        self._clock = clock
        self._from_file: dict[str, Source] = {}
        self._content: bytes | None = None
        self._problem: str | None = None
        self._checked = float("-inf")
        if self._path is not None:  # WriteKeyError: the server does not start
            self._content = _read_bytes(self._path)
            self._from_file = _parse(self._content, self._path)
            self._checked = clock()

    def count(self) -> int:
        """How many keys are in force."""
        return len({**self._fixed, **self._from_file})

    def source_of(self, write_key: str) -> Source | None:
        """The source `write_key` names, or None. Every key is compared in constant time, so
        the time of an answer does not say how much of a guess was right."""
        self._refresh()
        found = None
        given = write_key.encode()
        for keys in (self._fixed, self._from_file):
            for key, source in keys.items():
                if hmac.compare_digest(given, key.encode()):
                    found = source
        return found

    def _refresh(self) -> None:
        if self._path is None:
            return
        now = self._clock()
        if now - self._checked < CHECK_INTERVAL:
            return
        self._checked = now
        try:
            content = _read_bytes(self._path)
            if content == self._content:
                return
            self._content = content
            keys = _parse(content, self._path)
        except WriteKeyError as error:
            if str(error) != self._problem:  # once per problem, not every second
                log.warning("ingest: write keys: %s; keeping the %d keys read before", error,
                            len(self._from_file))
            self._problem = str(error)
            return
        log.info("ingest: write keys: read %d from %s", len(keys), self._path)
        self._from_file, self._problem = keys, None
