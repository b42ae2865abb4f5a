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
