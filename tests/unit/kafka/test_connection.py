"""The Kafka security settings and the connection options every client gets from them.

Real TLS and SASL exchanges are proven in tests/integration/test_kafka_security.py; these check the
settings' rules, the option objects and the failure messages.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors

from worker.config import SettingsError, load_settings
from worker.kafka.connection import (
    KafkaConnectionFailure,
    MskIamTokenProvider,
    StaticTokenProvider,
    client_options,
    describe_failure,
    faust_credentials,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in list(os.environ):
        if variable.startswith("SLUICE_"):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import trustme

    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    options = client_options(load_settings())
    assert options == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT",
                       "ssl_context": None}
    assert faust_credentials(load_settings()) is None


def test_sasl_ssl_with_scram_gives_every_client_tls_and_the_login(ca_file: Path) -> None:
    settings = load_settings(kafka_security_protocol="SASL_SSL",
                             kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
                             kafka_sasl_password="p", kafka_ssl_ca_file=ca_file)
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("u", "p")
    context = options["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "u" and credentials.ssl_context is not None


def test_hostname_check_can_be_switched_off_for_tests_only(ca_file: Path) -> None:
    settings = load_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file,
                             kafka_ssl_check_hostname=False)
    context = client_options(settings)["ssl_context"]
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_oauthbearer_uses_msk_iam_tokens_unless_a_token_is_given() -> None:
    iam = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                        s3_region="eu-west-1")
    provider = client_options(iam)["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider) and provider.region == "eu-west-1"
    fixed = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER",
                          kafka_sasl_oauth_token="abc")
    assert isinstance(client_options(fixed)["sasl_oauth_token_provider"], StaticTokenProvider)


async def test_msk_iam_token_is_a_presigned_connect_url_from_the_aws_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    token = await MskIamTokenProvider("eu-west-1").token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
    assert "X-Amz-Credential=AKIAEXAMPLE" in url and "X-Amz-Signature=" in url


async def test_msk_iam_without_aws_credentials_says_where_they_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(KafkaConnectionFailure, match="SLUICE_KAFKA_SASL_OAUTH_TOKEN"):
        await MskIamTokenProvider("eu-west-1").token()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "needs SLUICE_KAFKA_SASL_MECHANISM"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
     "needs SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD"),
    ({"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
     "needs SLUICE_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"kafka_ssl_ca_file": "/ca.pem"}, "does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"},
     "SLUICE_KAFKA_SSL_CERT_FILE and SLUICE_KAFKA_SSL_KEY_FILE go together"),
])
def test_incomplete_security_settings_are_refused_naming_the_settings(
    overrides: dict, message: str,
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(**overrides)


def test_unknown_mechanism_lists_the_accepted_ones() -> None:
    with pytest.raises(SettingsError, match="SLUICE_KAFKA_SASL_MECHANISM.*SCRAM-SHA-256"):
        load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI")


def test_unreadable_ca_file_names_the_tls_settings(tmp_path: Path) -> None:
    settings = load_settings(kafka_security_protocol="SSL",
                             kafka_ssl_ca_file=tmp_path / "missing.pem")
    with pytest.raises(KafkaConnectionFailure, match="SLUICE_KAFKA_SSL_CA_FILE"):
        client_options(settings)


def test_kafka_secrets_are_hidden_like_the_others() -> None:
    settings = load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
                             kafka_sasl_username="u", kafka_sasl_password="hunter2",
                             elasticsearch_url="https://elastic:es-pass@es:9200")
    shown = settings.as_environment(hide_secrets=True)
    assert shown["SLUICE_KAFKA_SASL_PASSWORD"] == "***"
    assert shown["SLUICE_KAFKA_SASL_USERNAME"] == "u"
    assert shown["SLUICE_ELASTICSEARCH_URL"] == "https://***@es:9200"
    assert "hunter2" not in repr(settings)
    # A child process still gets the real values.
    assert settings.as_environment()["SLUICE_KAFKA_SASL_PASSWORD"] == "hunter2"


@pytest.mark.parametrize(("error", "setting"), [
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "SLUICE_KAFKA_SSL_CA_FILE"),
    (ssl.SSLError(1, "wrong version number"), "SLUICE_KAFKA_SECURITY_PROTOCOL"),
    (kafka_errors.SaslAuthenticationFailed("bad"), "SLUICE_KAFKA_SASL_PASSWORD"),
    (kafka_errors.UnsupportedSaslMechanismError("no"), "SLUICE_KAFKA_SASL_MECHANISM"),
    (ConnectionRefusedError(111, "refused"), "SLUICE_KAFKA_BOOTSTRAP_SERVERS"),
    (kafka_errors.KafkaConnectionError("closed"), "SLUICE_KAFKA_SECURITY_PROTOCOL"),
])
def test_each_connection_failure_names_the_settings_to_check(
    error: BaseException, setting: str,
) -> None:
    settings = load_settings(kafka_security_protocol="SASL_PLAINTEXT",
                             kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                             kafka_sasl_password="p")
    assert setting in describe_failure(error, settings, "b:9092")


def test_s3_keys_default_to_the_aws_chain_and_addressing_follows_the_endpoint() -> None:
    settings = load_settings()
    assert settings.aws_access_key_id is None and settings.aws_secret_access_key is None
    assert settings.s3_addressing_style_for_endpoint == "path"  # the local endpoint
    assert load_settings(s3_endpoint_url="").s3_addressing_style_for_endpoint == "virtual"
    assert load_settings(s3_endpoint_url="", s3_addressing_style="path") \
        .s3_addressing_style_for_endpoint == "path"
