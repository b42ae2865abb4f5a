"""What must hold before a worker joins its group, each failing with one message that names the
setting to fix (never a traceback): the state directory can be written, the Kafka codecs can be
decoded, a broker answers, and the HTTP endpoints' port is free (if not, which process holds it:
``port_holder``, also used by the demo and the local stack).

The Elasticsearch and S3 checks live with their sinks (``preflight`` there); these are the
worker's own.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import tempfile
import time
from pathlib import Path

import psutil
from aiokafka import codec
from aiokafka.errors import KafkaError

from worker.config import Settings
from worker.kafka.connection import KafkaConnectionFailure, check_connection

log = logging.getLogger(__name__)

# Seconds between two attempts to reach a broker while a worker starts.
BROKER_RETRY_SECONDS = 1.0


class StartupError(Exception):
    """A start-up check failed; the message says which setting to check and how."""


class StartupSettingError(StartupError):
    """A setting's value passed validation but cannot work on this host (exit code 2, as for
    any bad setting): the message names the setting."""


def check_state_dir(settings: Settings) -> None:
    """The worker's local state directory (Faust's data, the S3 spool) exists or can be made,
    and a file can be written in it; StartupSettingError naming SLUICE_STATE_DIR if not."""
    directory = settings.state_dir
    step = "cannot be created"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        step = "cannot hold a new file"
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".sluice-write-check-"):
            pass
    except OSError as error:
        raise StartupSettingError(
            f"SLUICE_STATE_DIR={str(directory)!r} {_why_unusable(directory, step, error)}: set "
            "SLUICE_STATE_DIR to a directory this user can create and write (in a container: "
            "a writable volume, e.g. an emptyDir)"
        ) from None


def _why_unusable(directory: Path, step: str, error: OSError) -> str:
    for parent in (directory, *directory.parents):
        if parent.exists() and not parent.is_dir():
            return f"{step}: {parent} is a file, not a directory"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{step}: {error.strerror.lower() if error.strerror else 'permission denied'}"
    return f"{step} ({error.strerror or type(error).__name__})"


def missing_codecs() -> list[str]:
    """The Kafka compression codecs this installation of aiokafka cannot decode."""
    checks = {"gzip": codec.has_gzip, "snappy": codec.has_snappy, "lz4": codec.has_lz4,
              "zstd": codec.has_zstd}
    return [name for name, available in checks.items() if not available()]


def check_codecs() -> None:
    """Refuse to start when a codec is missing: the first batch in it would stop the worker,
    and a restarted worker would stop again on the same batch (a crash loop)."""
    missing = missing_codecs()
    if missing:
        raise StartupError(
            f"this installation cannot decode Kafka batches compressed with {', '.join(missing)} "
            "(producers such as librdkafka and the Java client use them): install Sluice with "
            "its dependencies (`pip install sluice`, which brings aiokafka[lz4,snappy,zstd]), or "
            "`pip install cramjam` into this environment"
        )


async def wait_for_broker(settings: Settings) -> None:
    """Wait until a broker of SLUICE_KAFKA_BOOTSTRAP_SERVERS answers, at most
    SLUICE_KAFKA_STARTUP_TIMEOUT seconds; StartupError naming the setting if none does."""
    timeout = settings.kafka_startup_timeout
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    announced = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(check_connection(settings), max(remaining, 0.1))
            return
        except KafkaConnectionFailure as failure:
            if not failure.unreachable:
                raise  # a broker answered and refused us (TLS, SASL): waiting will not help
            last_error = str(failure)
        except (KafkaError, OSError, TimeoutError) as error:
            last_error = str(error) or type(error).__name__
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not announced:
            log.warning("no Kafka broker answers at %s yet (%s); waiting up to %.0fs",
                        settings.kafka_bootstrap_servers, last_error, timeout)
            announced = True
        await asyncio.sleep(min(BROKER_RETRY_SECONDS, remaining))
    raise StartupError(
        f"no Kafka broker answered at {settings.kafka_bootstrap_servers} within {timeout:g}s "
        f"({last_error}): check SLUICE_KAFKA_BOOTSTRAP_SERVERS (host:port of your brokers), that "
        "the brokers run, and that this host reaches them (network, firewall, the brokers' "
        "advertised listeners); SLUICE_KAFKA_STARTUP_TIMEOUT sets how long to wait"
    )


def bind_web_port(settings: Settings) -> socket.socket | None:
    """The listening socket of the HTTP endpoints, bound now so that a port in use stops the
    worker before it joins the group, with a message naming the setting; None when they are
    switched off (SLUICE_WEB_PORT=0)."""
    if not settings.web_port:
        return None
    family = socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.web_host, settings.web_port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            holder = port_holder(settings.web_port)
            reason = (f"is already in use by {holder}" if holder
                      else "is already in use (another worker on this host?)")
        else:
            reason = f"cannot be used: {error.strerror}"
        raise StartupError(
            f"port {settings.web_port} on {settings.web_host} for /metrics and /health {reason}: "
            "set SLUICE_WEB_PORT to a free port (0 switches the endpoints off) or "
            "SLUICE_WEB_HOST to another address"
        ) from None
    sock.setblocking(False)
    return sock


def port_holder(port: int) -> str | None:
    """Which process listens on this TCP port of this host, for a person: `pid 4242 (python -m
    worker worker)`; None when it cannot be told (another user's process, no permission)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    pids = {c.pid for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    for pid in sorted(pids):
        try:
            process = psutil.Process(pid)
            command = " ".join(process.cmdline()) or process.name()
        except psutil.Error:
            return f"pid {pid}"
        return f"pid {pid} ({_shortened(command)})"
    return None


def _shortened(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[:limit - 1] + "…"
