"""Kafka clients over real TLS and SASL exchanges (tests/support/security_fronts.py in front of the
local broker, which speaks neither): each mechanism produces and consumes through the front, and
each wrong setting fails with one message naming the settings to check."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.support.security_fronts import (
    Front,
    NamespacedBroker,
    SaslPolicy,
    msk_iam_token_checker,
    server_tls,
)
from worker.config import Settings, load_settings
from worker.kafka.connection import KafkaConnectionFailure, check_connection, client_options
from worker.kafka.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

USERS = {"sluice": "s3cret-pass"}
AWS_KEY, AWS_SECRET, REGION = "AKIASLUICETEST", "test-secret-key", "eu-west-1"


@pytest.fixture
def front(netns_broker: NamespacedBroker, tls_ca: trustme.CA) -> Iterator[Front]:
    """SASL_SSL on the broker's advertised address: PLAIN, SCRAM and MSK IAM tokens."""
    policy = SaslPolicy(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"), USERS,
                        msk_iam_token_checker(AWS_KEY, AWS_SECRET, REGION))
    front = Front(netns_broker.port, unix_path=netns_broker.unix_path, tls=server_tls(tls_ca),
                  sasl=policy)
    yield front.start()
    front.stop()


def secure_settings(broker: NamespacedBroker, ca_file: Path, tmp_path: Path,
                    **overrides: object) -> Settings:
    name = f"sec-{os.urandom(4).hex()}"
    values: dict[str, object] = {
        "kafka_bootstrap_servers": f"127.0.0.1:{broker.port}",
        "kafka_security_protocol": "SASL_SSL", "kafka_ssl_ca_file": ca_file,
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "sluice",
        "kafka_sasl_password": USERS["sluice"], "source_topic": f"{name}-events",
        "catalog_topic": f"{name}-catalog", "app_id": name, "state_dir": tmp_path,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def secure(netns_broker: NamespacedBroker, tls_ca_file: Path,
           tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the namespaced broker behind a front (SASL_SSL, SCRAM-SHA-512 unless
    overridden)."""
    return functools.partial(secure_settings, netns_broker, tls_ca_file, tmp_path)


async def round_trip(settings: Settings) -> list[bytes]:
    """Create a topic, produce three records and read them back, all through the front."""
    topic = settings.source_topic
    await ensure_topics(settings, [TopicSpec(topic, 1, 1)])
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for value in (b"a", b"b", b"c"):
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
        return [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_each_password_mechanism_produces_and_consumes_over_sasl_ssl(
    front: Front, secure: Callable[..., Settings], mechanism: str,
) -> None:
    settings = secure(kafka_sasl_mechanism=mechanism)
    assert await round_trip(settings) == [b"a", b"b", b"c"]
    assert front.sasl is not None
    assert (mechanism, "sluice") in front.sasl.logins
    assert front.sasl.failures == 0


async def test_msk_iam_tokens_from_the_aws_chain_are_accepted_over_oauthbearer(
    front: Front, secure: Callable[..., Settings], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {AWS_KEY}\n"
                           f"aws_secret_access_key = {AWS_SECRET}\n")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    settings = secure(kafka_sasl_mechanism="OAUTHBEARER",
                               kafka_sasl_username=None, kafka_sasl_password=None,
                               kafka_aws_region=REGION)
    assert await round_trip(settings) == [b"a", b"b", b"c"]
    assert front.sasl is not None and ("OAUTHBEARER", "oauth") in front.sasl.logins


async def test_mutual_tls_client_certificate_is_required_and_used(
    netns_broker: NamespacedBroker, tls_ca: trustme.CA, secure: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    client_ca = trustme.CA()
    front = Front(netns_broker.port, unix_path=netns_broker.unix_path,
                  tls=server_tls(tls_ca, client_ca=client_ca)).start()
    try:
        without = secure(kafka_security_protocol="SSL",
                                  kafka_sasl_mechanism=None)
        with pytest.raises(KafkaConnectionFailure, match="SLUICE_KAFKA_SSL_CERT_FILE"):
            await check_connection(without)
        issued = client_ca.issue_cert("sluice-worker")
        cert, key = tmp_path / "client.pem", tmp_path / "client.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        with_cert = secure(kafka_security_protocol="SSL",
                                    kafka_sasl_mechanism=None, kafka_ssl_cert_file=cert,
                                    kafka_ssl_key_file=key)
        assert await round_trip(with_cert) == [b"a", b"b", b"c"]
    finally:
        front.stop()


async def test_wrong_ca_fails_naming_the_ca_setting(
    front: Front, secure: Callable[..., Settings], tmp_path: Path,
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    settings = secure(kafka_ssl_ca_file=other_ca)
    with pytest.raises(KafkaConnectionFailure, match="not trusted.*SLUICE_KAFKA_SSL_CA_FILE"):
        await check_connection(settings)


async def test_wrong_password_fails_naming_the_login_settings(
    front: Front, secure: Callable[..., Settings],
) -> None:
    settings = secure(kafka_sasl_password="wrong")
    with pytest.raises(KafkaConnectionFailure,
                       match="SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD"):
        await check_connection(settings)


async def test_mechanism_the_broker_refuses_fails_naming_the_mechanism_setting(
    netns_broker: NamespacedBroker, tls_ca: trustme.CA, secure: Callable[..., Settings],
) -> None:
    front = Front(netns_broker.port, unix_path=netns_broker.unix_path, tls=server_tls(tls_ca),
                  sasl=SaslPolicy(("SCRAM-SHA-512",), USERS)).start()
    try:
        settings = secure(kafka_sasl_mechanism="PLAIN")
        with pytest.raises(KafkaConnectionFailure, match="SLUICE_KAFKA_SASL_MECHANISM"):
            await check_connection(settings)
    finally:
        front.stop()


async def test_plaintext_client_on_a_tls_listener_fails_naming_the_protocol(
    front: Front, secure: Callable[..., Settings],
) -> None:
    settings = secure(kafka_security_protocol="PLAINTEXT",
                               kafka_sasl_mechanism=None, kafka_ssl_ca_file=None)
    with pytest.raises(KafkaConnectionFailure, match="SLUICE_KAFKA_SECURITY_PROTOCOL"):
        await asyncio.wait_for(check_connection(settings), 60)
