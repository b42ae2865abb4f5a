"""The S3 client's addressing style and TLS verification come from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import load_settings
from worker.sinks.s3.sink import make_client_context


@pytest.mark.parametrize(("endpoint", "style", "expected"), [
    ("http://127.0.0.1:8333", "auto", "path"),
    ("", "auto", "virtual"),
    ("", "path", "path"),
    ("https://s3.example.internal", "virtual", "virtual"),
])
async def test_addressing_style_is_virtual_on_aws_and_path_style_for_custom_endpoints(
    endpoint: str, style: str, expected: str,
) -> None:
    settings = load_settings(s3_endpoint_url=endpoint, s3_addressing_style=style)
    async with make_client_context(settings) as client:
        assert client.meta.config.s3["addressing_style"] == expected


async def test_no_keys_in_the_settings_leaves_credentials_to_the_aws_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    monkeypatch.delenv("SLUICE_AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    async with make_client_context(load_settings()) as client:
        credentials = await client._get_credentials().get_frozen_credentials()
        assert credentials.access_key == "from-the-chain"
