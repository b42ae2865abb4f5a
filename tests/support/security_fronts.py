"""Test scaffolding: real TLS and SASL exchanges in front of the local servers, which speak neither.

* ``NamespacedBroker``: the local broker (noida-db's Kafka) in a network namespace of its own,
  listening on 127.0.0.1:P *inside* it, reachable from the host only through a Unix socket (a
  bridge process in the namespace). The broker advertises 127.0.0.1:P, so a client that follows
  the advertised address lands on whatever listens on 127.0.0.1:P on the host: the front.
* ``Front``: listens on the host, optionally with TLS (and mutual TLS), optionally performs the
  Kafka SASL exchange itself (ApiVersions is passed on with SaslHandshake v0-1 and
  SaslAuthenticate v0-1 added, then SaslHandshake / SaslAuthenticate are answered here: PLAIN,
  SCRAM-SHA-256/512 with scramp's server side, OAUTHBEARER with a token check), and then passes
  bytes through to the upstream (a Unix socket or a TCP address). Without SASL it is a TLS
  terminator for any TCP protocol (the ES-API and S3 in the tests).

Certificates come from trustme in the tests; nothing here holds a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import REPO_ROOT

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 58, 33, 34


class NamespaceUnavailable(Exception):
    """This machine cannot create network namespaces (not root, or no `ip netns`)."""


def free_port() -> int:
    """A TCP port free on the host's loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NamespacedBroker:
    """See the module docstring. ``start()`` / ``stop()``; ``port`` and ``unix_path``."""

    def __init__(self, workdir: Path, broker_binary: Path) -> None:
        self.workdir = workdir
        self.binary = broker_binary
        self.port = free_port()
        self.namespace = f"sluice-{uuid.uuid4().hex[:8]}"
        # Unix socket paths are limited to 107 bytes: keep it short and outside tmp_path.
        self.unix_path = f"/tmp/{self.namespace}.sock"  # noqa: S108
        self._processes: list[subprocess.Popen[bytes]] = []
        self._created = False

    def start(self, timeout: float = 60.0) -> NamespacedBroker:
        if shutil.which("ip") is None:
            raise NamespaceUnavailable("no `ip` command (iproute2)")
        created = subprocess.run(["ip", "netns", "add", self.namespace], capture_output=True,
                                 text=True, check=False)
        if created.returncode != 0:
            raise NamespaceUnavailable(f"`ip netns add` failed: {created.stderr.strip()}")
        self._created = True
        self._in_namespace(["ip", "link", "set", "lo", "up"], wait=True)
        log = (self.workdir / "broker.log").open("ab")
        self._processes.append(self._in_namespace(
            [str(self.binary), "start", "--host", "127.0.0.1", "--only", "kafka",
             "--kafka-port", str(self.port), "--data-dir", str(self.workdir / "data")],
            stdout=log))
        self._processes.append(self._in_namespace(
            [sys.executable, "-m", "tests.support.security_fronts", "bridge", self.unix_path,
             str(self.port)], stdout=log))
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._created:  # without `ip` there is nothing to delete, nor a way to
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True,
                           check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.unix_path)

    def _in_namespace(self, argv: list[str], wait: bool = False,
                      stdout: object = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            ["ip", "netns", "exec", self.namespace, *argv], stdout=stdout,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT)
        if wait:
            process.wait(10)
        return process

    def _wait_ready(self, timeout: float) -> None:
        """Ready when an ApiVersions request through the Unix socket gets an answer."""
        deadline = time.monotonic() + timeout
        request = struct.pack(">hhih", API_VERSIONS, 0, 1, -1)
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    log = (self.workdir / "broker.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"namespaced broker process exited:\n{log}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.settimeout(2.0)
                    probe.connect(self.unix_path)
                    probe.sendall(struct.pack(">i", len(request)) + request)
                    if len(probe.recv(4)) == 4:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"namespaced broker not ready within {timeout:.0f}s")


@dataclass
class SaslPolicy:
    """What the front accepts: mechanisms, PLAIN/SCRAM users, and an OAUTHBEARER token check."""

    mechanisms: tuple[str, ...]
    users: dict[str, str] = field(default_factory=dict)
    accept_token: Callable[[str], bool] = lambda token: False
    # What the front saw, for the tests: (mechanism, principal) per successful login.
    logins: list[tuple[str, str]] = field(default_factory=list)
    failures: int = 0


class SaslRefused(Exception):
    """The client's login was refused; the message goes back to it."""


class Front:
    """See the module docstring. Runs its own event loop in a thread (tests wait synchronously)."""

    def __init__(self, port: int, *, unix_path: str | None = None,
                 upstream: tuple[str, int] | None = None, tls: ssl.SSLContext | None = None,
                 sasl: SaslPolicy | None = None) -> None:
        assert (unix_path is None) != (upstream is None)
        self.port, self.unix_path, self.upstream = port, unix_path, upstream
        self.tls, self.sasl = tls, sasl
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Front:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.tls), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path:
            return await asyncio.open_unix_connection(self.unix_path)
        assert self.upstream
        return await asyncio.open_connection(*self.upstream)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            writer.close()
            return
        try:
            if self.sasl is not None:
                await KafkaSaslSession(self.sasl, reader, writer, up_reader, up_writer).run()
            await pipe_both_ways(reader, writer, up_reader, up_writer)
        except (SaslRefused, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            for stream in (writer, up_writer):
                stream.close()


async def pipe_both_ways(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Copy bytes in both directions until either side closes."""

    async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            while chunk := await source.read(65536):
                target.write(chunk)
                await target.drain()
        with contextlib.suppress(Exception):
            target.close()

    await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


class KafkaSaslSession:
    """The SASL part of a Kafka connection, answered by the front before bytes pass through."""

    def __init__(self, policy: SaslPolicy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                 up_writer: asyncio.StreamWriter) -> None:
        self.policy = policy
        self.reader, self.writer = reader, writer
        self.up_reader, self.up_writer = up_reader, up_writer
        self.mechanism: str | None = None
        self._exchange: SaslExchange | None = None

    async def run(self) -> None:
        """Return once the client is authenticated; raise SaslRefused otherwise."""
        while True:
            frame = await read_frame(self.reader)
            api_key, version, correlation_id = struct.unpack(">hhi", frame[:8])
            body = skip_client_id(frame)
            if api_key == API_VERSIONS:
                await self._api_versions(frame, version)
            elif api_key == SASL_HANDSHAKE:
                self._handshake(correlation_id, body)
            elif api_key == SASL_AUTHENTICATE and self._exchange is not None:
                if await self._authenticate(correlation_id, version, body):
                    return
            else:  # Kafka closes a connection that skips authentication
                raise SaslRefused(f"api {api_key} before authentication")

    async def _api_versions(self, frame: bytes, version: int) -> None:
        from aiokafka.protocol.admin import ApiVersionResponse_v0, ApiVersionResponse_v1

        self.up_writer.write(struct.pack(">i", len(frame)) + frame)
        await self.up_writer.drain()
        answer = await read_frame(self.up_reader)
        response_class = ApiVersionResponse_v0 if version == 0 else ApiVersionResponse_v1
        response = response_class.decode(answer[4:])
        versions = [v for v in response.api_versions if v[0] not in (SASL_HANDSHAKE,
                                                                     SASL_AUTHENTICATE)]
        versions += [(SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)]
        fields = [response.error_code, versions]
        if version > 0:
            fields.append(response.throttle_time_ms)
        self._send(answer[:4] + response_class(*fields).encode())

    def _handshake(self, correlation_id: int, body: bytes) -> None:
        from aiokafka.protocol.admin import SaslHandShakeResponse_v1

        (length,) = struct.unpack(">h", body[:2])
        mechanism = body[2:2 + length].decode()
        accepted = mechanism in self.policy.mechanisms
        self._send(struct.pack(">i", correlation_id) + SaslHandShakeResponse_v1(
            0 if accepted else UNSUPPORTED_SASL_MECHANISM, list(self.policy.mechanisms)).encode())
        if not accepted:
            raise SaslRefused(f"mechanism {mechanism} not enabled")
        self.mechanism = mechanism
        self._exchange = SaslExchange(mechanism, self.policy)

    async def _authenticate(self, correlation_id: int, version: int, body: bytes) -> bool:
        from aiokafka.protocol.admin import SaslAuthenticateResponse_v0, SaslAuthenticateResponse_v1

        (length,) = struct.unpack(">i", body[:4])
        assert self._exchange is not None
        try:
            answer, done = self._exchange.step(body[4:4 + length])
            error, message = 0, None
        except SaslRefused as refused:
            answer, done, error, message = b"", False, SASL_AUTHENTICATION_FAILED, str(refused)
            self.policy.failures += 1
        fields: list = [error, message, answer]
        response_class = SaslAuthenticateResponse_v0
        if version > 0:
            response_class = SaslAuthenticateResponse_v1
            fields.append(3_600_000 if done else 0)
        self._send(struct.pack(">i", correlation_id) + response_class(*fields).encode())
        if error:
            await self.writer.drain()
            raise SaslRefused(message)
        if done:
            self.policy.logins.append((self.mechanism or "", self._exchange.principal))
        return done

    def _send(self, payload: bytes) -> None:
        self.writer.write(struct.pack(">i", len(payload)) + payload)


class SaslExchange:
    """The server side of one SASL login."""

    def __init__(self, mechanism: str, policy: SaslPolicy) -> None:
        self.mechanism, self.policy = mechanism, policy
        self.principal = ""
        self._scram = None
        if mechanism.startswith("SCRAM-"):
            from scramp import ScramMechanism

            scram = ScramMechanism(mechanism)
            infos = {user: scram.make_auth_info(password, iteration_count=4096)
                     for user, password in policy.users.items()}

            def auth_info(username: str) -> tuple:
                if username not in infos:
                    raise SaslRefused("Authentication failed: Invalid username or password")
                self.principal = username
                return infos[username]

            self._scram = scram.make_server(auth_info)

    def step(self, data: bytes) -> tuple[bytes, bool]:
        """The server's answer to the client's bytes, and whether the login is complete."""
        if self.mechanism == "PLAIN":
            _, user, password = data.decode().split("\0")
            if self.policy.users.get(user) != password:
                raise SaslRefused("Authentication failed: Invalid username or password")
            self.principal = user
            return b"", True
        if self.mechanism == "OAUTHBEARER":
            text = data.decode()
            token = text.split("auth=Bearer ", 1)[1].split("\x01", 1)[0] if "auth=" in text else ""
            if not self.policy.accept_token(token):
                raise SaslRefused("Authentication failed: invalid token")
            self.principal = "oauth"
            return b"", True
        return self._scram_step(data.decode())

    def _scram_step(self, message: str) -> tuple[bytes, bool]:
        from scramp import ScramException

        assert self._scram is not None
        try:
            if message.startswith(("n,", "y,", "p=")):
                self._scram.set_client_first(message)
                return self._scram.get_server_first().encode(), False
            self._scram.set_client_final(message)
            return self._scram.get_server_final().encode(), True
        except ScramException as error:
            raise SaslRefused(f"Authentication failed: {error}") from error


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One length-prefixed Kafka frame, without its length."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def skip_client_id(frame: bytes) -> bytes:
    """The request body after a v1 request header (api key, version, correlation id, client)."""
    (length,) = struct.unpack(">h", frame[8:10])
    return frame[10 + max(length, 0):]


def msk_iam_token_checker(access_key_id: str, secret_access_key: str,
                          region: str) -> Callable[[str], bool]:
    """Accept an AWS MSK IAM token only if it is a SigV4-presigned ``kafka-cluster:Connect``
    URL for `region` whose signature verifies with these credentials (as MSK checks it)."""
    import base64
    from datetime import datetime
    from unittest.mock import patch
    from urllib.parse import parse_qsl, urlsplit

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def check(token: str) -> bool:
        try:
            url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except ValueError:
            return False
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        if parts.netloc != f"kafka.{region}.amazonaws.com" or \
                params.get("Action") != "kafka-cluster:Connect" or \
                not params.get("X-Amz-Credential", "").startswith(access_key_id + "/"):
            return False
        # Sign the same request at the same moment again; the signatures must agree.
        signer = SigV4QueryAuth(Credentials(access_key_id, secret_access_key), "kafka-cluster",
                                region, expires=int(params["X-Amz-Expires"]))
        request = AWSRequest(method="GET", url=f"https://{parts.netloc}/",
                             params={"Action": "kafka-cluster:Connect"})
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        with patch("botocore.auth.get_current_datetime", return_value=signed_at):
            signer.add_auth(request)
        expected = dict(parse_qsl(urlsplit(request.prepare().url).query))
        return expected.get("X-Amz-Signature") == params.get("X-Amz-Signature")

    return check


async def _bridge(unix_path: str, port: int) -> None:
    """Inside the namespace: every Unix-socket connection becomes a TCP one to the broker."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await pipe_both_ways(reader, writer, up_reader, up_writer)

    server = await asyncio.start_unix_server(handle, unix_path)
    os.chmod(unix_path, 0o600)
    async with server:
        await server.serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["bridge"]:
    asyncio.run(_bridge(sys.argv[2], int(sys.argv[3])))


def server_tls(ca: object, client_ca: object | None = None) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 and localhost signed by `ca` (a
    trustme CA); with `client_ca`, clients must present a certificate it signed (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)  # type: ignore[attr-defined]
    if client_ca is not None:
        client_ca.configure_trust(context)  # type: ignore[attr-defined]
        context.verify_mode = ssl.CERT_REQUIRED
    return context
