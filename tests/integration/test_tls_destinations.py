"""Elasticsearch and S3 over TLS with a custom CA (TLS terminators of
tests/support/security_fronts.py in front of the local servers), and S3 credentials from the
standard AWS chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.security_fronts import Front, free_port, server_tls
from worker.config import Settings
from worker.local.stack import LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY
from worker.sinks.elasticsearch import client as elasticsearch
from worker.sinks.elasticsearch.sink import ElasticsearchStartupError
from worker.sinks.s3 import client as s3
from worker.sinks.s3.sink import S3StartupError

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_front(request: pytest.FixtureRequest, settings: Settings,
              tls_ca: trustme.CA) -> Iterator[Front]:
    """A TLS terminator in front of the server of `request.param` ("elasticsearch" or "s3")."""
    url = settings.elasticsearch_url if request.param == "elasticsearch" \
        else settings.s3_endpoint_url or ""
    host, port = url.split("//")[1].split(":")
    front = Front(free_port(), upstream=(host, int(port)), tls=server_tls(tls_ca)).start()
    yield front
    front.stop()


@pytest.fixture
def empty_aws_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AWS credentials anywhere in this process's chain; returns where a credentials file
    would be read from."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "aws-credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return path


@pytest.mark.parametrize("tls_front", ["elasticsearch"], indirect=True)
async def test_elasticsearch_over_tls_with_the_custom_ca(
    settings: Settings, tls_front: Front, tls_ca_file: Path, tmp_path: Path,
) -> None:
    secure = settings.model_copy(update={
        "elasticsearch_url": f"https://127.0.0.1:{tls_front.port}",
        "elasticsearch_ca_certs": tls_ca_file})
    await elasticsearch.preflight(secure)  # cluster info and the template, over TLS
    assert tls_front.connections > 0
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(ElasticsearchStartupError, match="SLUICE_ELASTICSEARCH_CA_CERTS"):
        await elasticsearch.preflight(secure.model_copy(update={"elasticsearch_ca_certs": other}))


@pytest.mark.parametrize("tls_front", ["s3"], indirect=True)
async def test_s3_over_tls_with_the_ca_bundle_setting(
    settings: Settings, tls_front: Front, tls_ca_file: Path, tmp_path: Path,
) -> None:
    secure = settings.model_copy(update={
        "s3_endpoint_url": f"https://127.0.0.1:{tls_front.port}", "s3_ca_bundle": tls_ca_file})
    await s3.preflight(secure)  # HeadBucket, CreateBucket: SigV4 over TLS
    assert tls_front.connections > 0
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(S3StartupError, match="SLUICE_S3_CA_BUNDLE"):
        await s3.preflight(secure.model_copy(update={"s3_ca_bundle": other}))


async def test_s3_without_keys_uses_the_aws_credential_chain(
    settings: Settings, empty_aws_chain: Path,
) -> None:
    chain = settings.model_copy(update={"aws_access_key_id": None,
                                        "aws_secret_access_key": None})
    with pytest.raises(S3StartupError, match="no AWS credentials found"):
        await s3.preflight(chain)
    write_credentials(empty_aws_chain)
    await s3.preflight(chain)  # the chain's shared credentials file: the bucket is created


def write_credentials(path: Path) -> None:
    """An AWS shared credentials file with the local stack's keys."""
    path.write_text(f"[default]\naws_access_key_id = {LOCAL_S3_ACCESS_KEY}\n"
                    f"aws_secret_access_key = {LOCAL_S3_SECRET_KEY}\n")
