"""URLs are shown without user information, wherever they appear, and checked as settings."""

from __future__ import annotations

import pytest

from worker.config import SettingsError, load_settings, redact_url, redact_urls
from worker.config.urls import check_http_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://elastic:s3cret@es.example.com:9243", "https://***@es.example.com:9243"),
    ("http://127.0.0.1:9200", "http://127.0.0.1:9200"),
    ("https://user@es:9200/prefix", "https://***@es:9200/prefix"),
    # Issue 26: a "/" in the password hid the "@" from the pattern; an "@" leaked the rest.
    ("https://elastic:pa/ss@es:9200", "https://***@es:9200"),
    ("https://elastic:p@ss@es:9200", "https://***@es:9200"),
    ("https://elastic:p?a#s@es:9200/x", "https://***@es:9200/x"),
    ("https://el%40stic:p%2Fss@es:9200", "https://***@es:9200"),
])
def test_a_url_is_shown_without_its_user_information(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_every_url_in_a_text_is_redacted_and_the_rest_kept() -> None:
    text = ("POST https://elastic:pa/ss@es1:9200/_bulk failed, nodes "
            "https://a:b@es1:9200,https://c:d@es2:9200 and 's3://k:s@bucket/key'")
    assert redact_urls(text) == ("POST https://***@es1:9200/_bulk failed, nodes "
                                 "https://***@es1:9200,https://***@es2:9200 and "
                                 "'s3://***@bucket/key'")


@pytest.mark.parametrize("url", ["not-a-url", "ftp://h:21", "http://", "https://h:99999",
                                 "http://user:xyzzy/1@h:9200", "http://user/xyzzy@h",
                                 "http://user:xyzzy?1@h"])
def test_what_is_not_an_http_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_http_url(url)
    assert "xyzzy" not in str(refused.value) and url not in str(refused.value)


def test_the_s3_endpoint_is_checked_like_the_elasticsearch_url() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(s3_endpoint_url="not-a-url")
    (line,) = str(refused.value).splitlines()[1:]
    assert line.startswith("  SLUICE_S3_ENDPOINT_URL='not-a-url': not an http:// or https://")
    assert load_settings(s3_endpoint_url="").s3_endpoint_url is None  # AWS's own endpoints


@pytest.mark.parametrize(("variable", "given"), [
    ("elasticsearch_url", "ftp://elastic:s3cret@es:9200"),
    ("elasticsearch_url", "https://elastic:s3/cret@es:9200"),
    ("s3_endpoint_url", "https://key:s3cret@s3:8333/x@y"),
])
def test_a_refused_url_is_echoed_without_its_password(variable: str, given: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**{variable: given})
    message = str(refused.value)
    assert f"SLUICE_{variable.upper()}=" in message
    assert "s3cret" not in message and "s3/cret" not in message and "cret" not in message


def test_shown_settings_redact_every_url_and_hide_only_secrets_that_are_set() -> None:
    shown = load_settings(
        s3_endpoint_url="https://key:s3cret@s3.example.com",
        elasticsearch_url="https://elastic:pa%2Fss@es1:9200",
    ).as_environment(hide_secrets=True)
    assert shown["SLUICE_S3_ENDPOINT_URL"] == "https://***@s3.example.com"
    assert shown["SLUICE_ELASTICSEARCH_URL"] == "https://***@es1:9200"
    assert shown["SLUICE_INGEST_BEARER_TOKENS"] == ""  # not set: nothing to hide


def test_sluice_settings_says_unset_for_a_secret_that_is_not_set() -> None:
    from worker.cli.main import effective_settings_lines

    lines = effective_settings_lines(load_settings())
    assert "SLUICE_INGEST_BEARER_TOKENS=  # unset" in lines
    assert not [line for line in lines if line.endswith("=***")]
