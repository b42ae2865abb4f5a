"""`sluice catalog …` against the real broker (and moto's API Gateway for the sync)."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import orjson
import pytest

from worker.config import Settings

pytestmark = pytest.mark.integration


def _sluice(settings: Settings, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    environment.update(settings.as_environment(), **extra_env)
    return subprocess.run([sys.executable, "-m", "worker", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def _shown(settings: Settings) -> dict[str, dict]:
    result = _sluice(settings, "catalog", "show")
    assert result.returncode == 0, result.stderr
    return {entry["api_key_id"]: entry
            for entry in map(orjson.loads, result.stdout.splitlines())}


def test_catalog_load_writes_entries_and_deletions(settings: Settings, tmp_path: Path) -> None:
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text("api_key_id,customer_name,usage_plan_name\nk1,Acme,Gold\nk2,Globex,Free\n")
    assert _sluice(settings, "catalog", "load", str(csv_file)).returncode == 0
    assert set(_shown(settings)) == {"k1", "k2"}

    result = _sluice(settings, "catalog", "load", str(csv_file), "--delete", "k2")
    assert "1 deletions" in result.stdout
    shown = _shown(settings)
    assert set(shown) == {"k1"} and shown["k1"]["usage_plan_name"] == "Gold"


def test_catalog_load_rejects_a_bad_file_naming_the_entry(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text('[{"api_key_id": "k1"}, {"customer_name": "no key"}]')
    result = _sluice(settings, "catalog", "load", str(bad))
    assert result.returncode == 1
    assert "entry 2: api_key_id" in result.stderr


def test_sync_apigateway_writes_usage_plan_keys_and_prunes_removed_ones(
    settings: Settings, moto_url: str
) -> None:
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("apigateway", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    plan = client.create_usage_plan(name="Enterprise")
    keys = [client.create_api_key(name=name, enabled=True) for name in ("Acme", "Globex")]
    for key in keys:
        client.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")

    result = _sluice(settings, "catalog", "sync-apigateway", "--endpoint-url", moto_url, **aws)
    assert result.returncode == 0, result.stderr
    shown = _shown(settings)
    assert {entry["customer_name"] for entry in shown.values()} == {"Acme", "Globex"}
    assert {entry["usage_plan_name"] for entry in shown.values()} == {"Enterprise"}

    client.delete_usage_plan_key(usagePlanId=plan["id"], keyId=keys[1]["id"])
    result = _sluice(settings, "catalog", "sync-apigateway", "--endpoint-url", moto_url,
                     "--prune", **aws)
    assert "deleted 1 stale keys" in result.stdout
    assert set(_shown(settings)) == {keys[0]["id"]}


def _sync_without_aws_configuration(tmp_path: Path, *args: str,
                                    **aws: str) -> subprocess.CompletedProcess[str]:
    """`sluice catalog sync-apigateway` with no AWS configuration but what is given here (no
    config files, no instance metadata)."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SLUICE_", "AWS_"))}
    environment.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true",
                       AWS_CONFIG_FILE=str(tmp_path / "none"),
                       AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), **aws)
    return subprocess.run([sys.executable, "-m", "worker", "catalog", "sync-apigateway", *args],
                          env=environment, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


_KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@pytest.mark.parametrize(("args", "aws", "code", "says"), [
    # Issue 26: 86 to 162 lines of botocore traceback for each of these.
    (["--endpoint-url", "http://127.0.0.1:1", "--region", "us-east-1"], _KEYS, 1,
     "error: cannot reach http://127.0.0.1:1 (Could not connect to the endpoint URL: "),
    ([], _KEYS, 2, "error: no AWS region for API Gateway: pass --region"),
    (["--endpoint-url", "not-a-url", "--region", "us-east-1"], _KEYS, 2,
     "error: --endpoint-url 'not-a-url': not an http:// or https:// URL"),
    (["--region", "us-east-1"], {}, 2, "error: no AWS credentials for API Gateway"),
])
def test_sync_apigateway_that_cannot_read_says_why_in_one_line(
    tmp_path: Path, args: list[str], aws: dict[str, str], code: int, says: str,
) -> None:
    result = _sync_without_aws_configuration(tmp_path, *args, **aws)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(says), line
