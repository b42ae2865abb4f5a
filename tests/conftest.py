"""Every fixture of the suites, in one place: the local stack (session-wide), per-test settings and
names, S3 settings, a broker of a test's own, the TLS and SASL fronts. Helpers they use live in
``tests/support/``.

Every server address comes from the settings, read from the SLUICE_* variables as the worker
reads them: pointed elsewhere than loopback, the suite runs against those servers and starts no
local stack (README, "Tests")."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.paths import REPO_ROOT
from tests.support.prerequisites import unavailable
from tests.support.processes import free_port
from tests.support.security_fronts import NamespacedBroker, NamespaceUnavailable
from tests.support.servers import on_loopback
from worker.config import Settings, load_settings
from worker.local.servers import noida_binary
from worker.local.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, LocalStack

TEST_STACK_DIR = REPO_ROOT / ".sluice" / "test-stack"


def _stack_is_up(stack: LocalStack) -> bool:
    return all(not server.down_services for server in stack.status())


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack | None]:
    """The local stack: reused if it already answers, else started fresh and stopped at the end.

    None when the settings (SLUICE_* variables) point at servers elsewhere: then the suite uses
    those and starts nothing (tests/support/servers.py).
    """
    settings = load_settings(stack_dir=TEST_STACK_DIR)
    if not on_loopback(settings):
        yield None
        return
    stack = LocalStack(settings)
    if _stack_is_up(stack):
        yield stack
        return
    # A fresh data directory per run: the servers keep everything, and old topics only confuse.
    # Only for servers not running: a server of ours still up (another session stopped only
    # some) keeps its directory, which PostgreSQL in particular cannot lose under its feet.
    for server in stack.servers():
        if stack.owned_process(server) is None:
            shutil.rmtree(stack.data_dir / server.name, ignore_errors=True)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def unique_name(request: pytest.FixtureRequest, prefix: str = "t") -> str:
    """A name no other test uses, readable in broker and server listings: `t-<test>-<random>`."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's AWS emulator on a free loopback port, one per test session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The moto server, emptied: moto keeps its state per process, across servers and tests."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    return moto_server


@pytest.fixture
def settings(stack: LocalStack | None, request: pytest.FixtureRequest,
             tmp_path: Path) -> Settings:
    """Settings against the suite's servers with this test's own topics, group, index and
    bucket. Addresses and credentials come from the SLUICE_* variables, as for the worker; the
    local stack's S3 keys are added when the suite runs on it."""
    name = unique_name(request)
    # The local S3 server's keys: no longer defaults (unset means the AWS chain).
    local_keys = {} if stack is None else {"aws_access_key_id": LOCAL_S3_ACCESS_KEY,
                                           "aws_secret_access_key": LOCAL_S3_SECRET_KEY}
    return load_settings(
        stack_dir=TEST_STACK_DIR,
        app_id=name,
        source_topic=f"{name}-events",
        catalog_topic=f"{name}-catalog",
        s3_bucket=name[:63].rstrip("-"),
        sinks=["counting"],
        elasticsearch_index=f"{name}-%Y.%m.%d",
        elasticsearch_template_name=name,
        web_port=0,
        state_dir=tmp_path / "state",
        **local_keys,
    )


@pytest.fixture(scope="module")
def netns_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamespacedBroker]:
    """A broker of its own in a network namespace, for TLS and SASL fronts on its advertised
    address (tests/support/security_fronts.py); skips where namespaces cannot be made, and fails
    there in CI (CI=true): a skipped security test must not leave CI green."""
    broker = NamespacedBroker(tmp_path_factory.mktemp("netns-broker"), noida_binary())
    try:
        broker.start()
    except NamespaceUnavailable as error:
        broker.stop()
        unavailable(f"needs network namespaces (root and `ip netns`): {error}")
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    """A throwaway CA for the TLS tests (keys live in memory and temporary files only)."""
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA's certificate as a PEM file, as the settings take it."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def s3_settings(settings: Settings) -> Settings:
    """Settings for S3 sink tests: hive layout under `logs/`, short ages and retries."""
    return settings.model_copy(update={
        "sinks": ["s3"],
        "s3_time_field": "timestamp",
        "s3_prefix": "logs/",
        "s3_part_max_age": 2.0,
        "s3_hour_close_grace": 0.0,
        "s3_retry_initial": 0.1,
        "s3_retry_max": 1.0,
        "commit_interval": 0.5,
    })


@pytest.fixture
def iceberg_settings(settings: Settings) -> Settings:
    """Settings for Iceberg sink tests: this test's own namespace in the local PostgreSQL
    catalog, its warehouse in this test's bucket, commits every second."""
    namespace = re.sub(r"[^a-z0-9]+", "_", settings.app_id.lower()).strip("_")
    return settings.model_copy(update={
        "sinks": ["iceberg"],
        "iceberg_table": f"{namespace}.events",
        "iceberg_warehouse": f"s3://{settings.s3_bucket}/iceberg",
        "iceberg_commit_interval": 1.0,
        "iceberg_retry_initial": 0.1,
        "iceberg_retry_max": 1.0,
        "commit_interval": 0.5,
    })


@pytest.fixture
def own_broker(settings: Settings, tmp_path: Path) -> Iterator[tuple[LocalStack, Settings]]:
    """A broker (and Elasticsearch API) of this test's own; S3 is the session's server."""
    kafka_port, es_port = free_port(), free_port()
    own = settings.model_copy(update={
        "stack_dir": tmp_path / "own-stack",
        "kafka_bootstrap_servers": f"127.0.0.1:{kafka_port}",
        "elasticsearch_url": f"http://127.0.0.1:{es_port}",
    })
    stack = LocalStack(own)
    stack.up(log=lambda line: None)
    try:
        yield stack, own
    finally:
        stack.down(log=lambda line: None)  # leaves the session's S3 server alone: not ours
