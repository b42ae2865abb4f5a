"""Running `sluice ingest`: start-up checks, the servers, and a clean stop on SIGTERM.

Start-up is refused with one message when a configured form has no credentials, or when a port
is taken. The broker need not be up: the server starts, answers 503 until the producer is
connected, and is ready (``/health/ready``) once it has been connected. Readiness does not drop
when the broker goes away later: every instance would leave the load balancer together and
clients would get connection errors instead of the 503 and Retry-After they know to retry.

On SIGTERM (or Ctrl-C) the server stops taking connections, answers the requests in flight,
and closes the producer.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal

from worker.config import Settings
from worker.ingest.auth import credential_problems
from worker.ingest.errors import IngestStartupError
from worker.ingest.metrics import IngestMetrics
from worker.ingest.producer import IngestProducer
from worker.ingest.server import IngestServer
from worker.ops.server import OpsServer
from worker.ops.status_page import StatusPage

log = logging.getLogger(__name__)


# Descriptors besides the client connections: the broker, the ops server, logs, the loop.
SPARE_FILES = 64


def check_settings(settings: Settings) -> None:
    """Refuse a configuration that could not verify a form's requests."""
    problems = credential_problems(settings)
    if problems:
        raise IngestStartupError("sluice ingest cannot start: " + "; ".join(problems)
                                 + " (or leave the form out of SLUICE_INGEST_FORMS)")


def ensure_file_limit(settings: Settings) -> None:
    """Raise the open-file limit to what SLUICE_INGEST_MAX_CONNECTIONS needs, or refuse to start:
    past the limit, accepting a connection fails and nobody is answered, not even with 503."""
    needed = settings.ingest_max_connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise IngestStartupError(
                f"sluice ingest cannot start: SLUICE_INGEST_MAX_CONNECTIONS="
                f"{settings.ingest_max_connections} needs {needed} open files, and the limit is "
                f"{hard} (ulimit -n): lower the setting or raise the limit")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _listen(server: IngestServer | OpsServer, host: str, port: int, setting: str) -> None:
    try:
        await server.start()
    except OSError as error:
        raise IngestStartupError(
            f"sluice ingest cannot listen on {host}:{port} ({setting}): "
            f"{error.strerror or error}") from None


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set, or SIGTERM / SIGINT arrives."""
    check_settings(settings)
    ensure_file_limit(settings)
    producer = IngestProducer(settings)
    metrics = IngestMetrics(lambda: producer.available)
    producer.on_outcome = lambda outcome: metrics.transactions.labels(outcome).inc()
    server = IngestServer(settings, producer, metrics)

    async def readiness() -> dict[str, str]:
        if producer.ever_connected:
            return {}
        return {"broker": producer.problem or "not connected yet"}

    ops = (OpsServer(settings.web_host, settings.web_port, metrics.registry, readiness,
                     page=StatusPage("ingest"))
           if settings.web_port else None)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await _listen(server, settings.ingest_host, settings.ingest_port, "SLUICE_INGEST_PORT")
    try:
        if ops:
            await _listen(ops, settings.web_host, settings.web_port, "SLUICE_WEB_PORT")
        producer.start()
        await stop.wait()
        log.info("ingest: stopping (answering the requests in flight first)")
    finally:
        await server.stop()
        if ops:
            await ops.stop()
        await producer.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("ingest: stopped")
