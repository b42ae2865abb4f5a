"""A worker process end to end over TLS and SASL everywhere, and the failures it explains.

Kafka: SASL_SSL with SCRAM-SHA-512, through the front of tests/support/security_fronts.py on the
advertised address of a broker in its own network namespace. Elasticsearch and S3: behind TLS
terminators with a certificate from a throwaway CA (SLUICE_ELASTICSEARCH_CA_CERTS,
SLUICE_S3_CA_BUNDLE). S3 keys: none in the settings, so the worker signs with the standard AWS
chain, pointed at a shared credentials file holding the local stack's keys.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.ledger import (
    assert_exactly_once,
    committed_total,
    elasticsearch_ids,
    s3_ids,
    steady_traffic,
)
from tests.support.processes import SluiceProcess, wait_for_no_lag
from tests.support.security_fronts import Front, NamespacedBroker, SaslPolicy, free_port, server_tls
from tests.support.waiting import eventually
from worker.config import Settings, load_settings
from worker.kafka.topics import ensure_topics
from worker.local.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY

pytestmark = pytest.mark.e2e

USER, PASSWORD = "sluice-worker", "correct horse battery staple"
COMMITTED_UNDER_TRAFFIC = 300


async def _committed_at_least(settings: Settings, records: int) -> bool:
    return await committed_total(settings) >= records


@pytest.fixture
def kafka_front(netns_broker: NamespacedBroker, tls_ca: trustme.CA) -> Iterator[Front]:
    front = Front(netns_broker.port, unix_path=netns_broker.unix_path, tls=server_tls(tls_ca),
                  sasl=SaslPolicy(("SCRAM-SHA-512",), {USER: PASSWORD}))
    yield front.start()
    front.stop()


@pytest.fixture
def tls_fronts(settings: Settings, tls_ca: trustme.CA) -> Iterator[tuple[Front, Front]]:
    """TLS terminators in front of the local stack's ES-API and S3 servers."""
    fronts = []
    for url in (settings.elasticsearch_url, settings.s3_endpoint_url or ""):
        host, port = url.split("//")[1].split(":")
        fronts.append(Front(free_port(), upstream=(host, int(port)),
                            tls=server_tls(tls_ca)).start())
    yield fronts[0], fronts[1]
    for front in fronts:
        front.stop()


def secure_worker_settings(settings: Settings, broker: NamespacedBroker, ca_file: Path,
                           es_front: Front, s3_front: Front, **overrides: object) -> Settings:
    values = settings.model_dump()
    values.update({
        "kafka_bootstrap_servers": f"127.0.0.1:{broker.port}",
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": USER, "kafka_sasl_password": PASSWORD,
        "kafka_ssl_ca_file": ca_file,
        "sinks": ["elasticsearch", "s3"],
        "elasticsearch_url": f"https://127.0.0.1:{es_front.port}",
        "elasticsearch_ca_certs": ca_file,
        "s3_endpoint_url": f"https://127.0.0.1:{s3_front.port}", "s3_ca_bundle": ca_file,
        "aws_access_key_id": None, "aws_secret_access_key": None,
        "commit_interval": 0.5, "s3_part_max_age": 1.5, "elasticsearch_batch_max_age": 0.3,
    })
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def aws_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The standard AWS chain of this process and its children: a shared credentials file
    with the local stack's keys, nothing else (no AWS_* keys, no instance metadata)."""
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {LOCAL_S3_ACCESS_KEY}\n"
                           f"aws_secret_access_key = {LOCAL_S3_SECRET_KEY}\n")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return credentials


async def test_worker_delivers_every_event_over_sasl_ssl_and_tls_to_both_sinks(
    settings: Settings, netns_broker: NamespacedBroker, tls_ca_file: Path, kafka_front: Front,
    tls_fronts: tuple[Front, Front], aws_chain: Path, tmp_path: Path,
) -> None:
    es_front, s3_front = tls_fronts
    secure = secure_worker_settings(settings, netns_broker, tls_ca_file, es_front, s3_front)
    await ensure_topics(secure)
    worker = SluiceProcess(secure, ["worker"], tmp_path / "worker.log")
    produced: dict[str, int] = {}
    try:
        await asyncio.to_thread(worker.wait_for_log, r"partitions assigned: \S+\[\d", 120)
        stop = asyncio.Event()
        traffic = asyncio.create_task(steady_traffic(secure, produced, stop, per_second=100))
        # Traffic until the group has committed COMMITTED_UNDER_TRAFFIC records: consumed,
        # written to both sinks and committed, over SASL_SSL and TLS, while records still flow.
        await eventually(lambda: _committed_at_least(secure, COMMITTED_UNDER_TRAFFIC),
                         timeout=120, what=f"{COMMITTED_UNDER_TRAFFIC} records committed")
        stop.set()
        await traffic
        await wait_for_no_lag(secure, worker, timeout=120)
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log()[-3000:]
    # The books are read from the servers directly (plain, the local stack's keys).
    assert_exactly_once(set(produced), await elasticsearch_ids(settings), "Elasticsearch")
    assert_exactly_once(set(produced), await s3_ids(settings), "S3")
    # Everything went through the fronts: SCRAM logins, TLS connections to ES and S3.
    assert kafka_front.sasl is not None and kafka_front.sasl.failures == 0
    assert {user for _, user in kafka_front.sasl.logins} == {USER}
    assert es_front.connections > 0 and s3_front.connections > 0
    assert "Traceback" not in worker.log()


def run_worker_until_exit(settings: Settings, tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(settings.as_environment())
    return subprocess.run([sys.executable, "-m", "worker", "worker"], env=environment,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(("overrides", "named"), [
    ({"kafka_sasl_password": "wrong"},
     "SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD"),
    ({"kafka_ssl_ca_file": "OTHER_CA"}, "SLUICE_KAFKA_SSL_CA_FILE"),
    ({"kafka_sasl_mechanism": "PLAIN"}, "SLUICE_KAFKA_SASL_MECHANISM"),
], ids=["wrong-password", "wrong-ca", "refused-mechanism"])
def test_worker_with_a_wrong_kafka_secret_exits_with_one_message_naming_it(
    settings: Settings, netns_broker: NamespacedBroker, tls_ca_file: Path, kafka_front: Front,
    tls_fronts: tuple[Front, Front], tmp_path: Path, overrides: dict, named: str,
) -> None:
    if overrides.get("kafka_ssl_ca_file") == "OTHER_CA":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        overrides = {"kafka_ssl_ca_file": other}
    secure = secure_worker_settings(settings, netns_broker, tls_ca_file, *tls_fronts,
                                    **overrides)
    result = run_worker_until_exit(secure, tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert named in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert PASSWORD not in result.stdout + result.stderr
