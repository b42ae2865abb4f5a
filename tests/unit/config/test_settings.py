from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT
from worker.config import Settings, SettingsError, load_settings, settings_table_markdown


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SLUICE_* variable or .env of the developer's may leak into these tests."""
    import os

    for variable in list(os.environ):
        if variable.startswith("SLUICE_"):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.bootstrap_server_list == ["127.0.0.1:9092"]
    assert settings.elasticsearch_url == "http://127.0.0.1:9200"
    assert settings.s3_endpoint_url == "http://127.0.0.1:8333"


def test_dead_letter_topic_is_derived_from_the_source_topic_unless_set() -> None:
    assert load_settings(source_topic="clicks").dead_letter_topic_name == "clicks.dlq"
    assert load_settings(dead_letter_topic="failed").dead_letter_topic_name == "failed"


def test_environment_variables_use_the_sluice_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("SLUICE_KAFKA_BOOTSTRAP_SERVERS", " b1:9092 , b2:9093 ")
    settings = load_settings()
    assert settings.topic_partitions == 12
    assert settings.bootstrap_server_list == ["b1:9092", "b2:9093"]


def test_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLUICE_SOURCE_TOPIC=from-dotenv\n")
    assert load_settings().source_topic == "from-dotenv"


def test_bad_partition_count_names_the_variable_and_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_TOPIC_PARTITIONS", "0")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "SLUICE_TOPIC_PARTITIONS='0'" in str(error.value)
    assert "greater than or equal to 1" in str(error.value)


def test_malformed_bootstrap_servers_are_rejected_with_an_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_KAFKA_BOOTSTRAP_SERVERS", "kafka://broker")
    with pytest.raises(SettingsError, match=r"SLUICE_KAFKA_BOOTSTRAP_SERVERS.*host:port"):
        load_settings()


def test_unknown_log_format_lists_the_accepted_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match=r"SLUICE_LOG_FORMAT='xml'.*'text' or 'json'"):
        load_settings()


def test_invalid_topic_name_is_rejected() -> None:
    with pytest.raises(SettingsError, match="SLUICE_SOURCE_TOPIC"):
        load_settings(source_topic="has spaces")


def test_empty_s3_endpoint_means_aws_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_S3_ENDPOINT_URL", "")
    assert load_settings().s3_endpoint_url is None


def test_secret_is_not_shown_in_the_settings_repr() -> None:
    assert "s3-secret" not in repr(load_settings(aws_secret_access_key="s3-secret"))


def test_s3_keys_are_unset_by_default_so_the_aws_chain_is_used() -> None:
    settings = load_settings()
    assert settings.aws_access_key_id is None
    assert settings.aws_secret_access_key is None


def test_shown_settings_hide_user_and_password_in_the_elasticsearch_url() -> None:
    settings = load_settings(elasticsearch_url="https://elastic:pa55@es1:9200,https://es2:9200")
    shown = settings.as_environment(hide_secrets=True)["SLUICE_ELASTICSEARCH_URL"]
    assert shown == "https://***@es1:9200,https://es2:9200"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_readme_settings_table_matches_the_settings_model() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert settings_table_markdown() in readme, (
        "README.md's settings table is stale: run `make readme`"
    )


def test_credentials_in_urls_are_redacted_for_messages() -> None:
    from worker.config import redact_url

    assert redact_url("https://elastic:s3cret@es.example.com:9243") == "https://***@es.example.com:9243"
    assert redact_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"


def test_settings_table_shows_list_defaults_as_the_variable_would_be_written() -> None:
    table = settings_table_markdown()
    assert "PydanticUndefined" not in table
    assert "| `SLUICE_SINKS` | list | `elasticsearch,s3` |" in table
    assert "| `SLUICE_S3_CSV_COLUMNS` | list |  |" in table


def test_sluice_settings_shows_unset_settings_and_the_derived_dead_letter_topic() -> None:
    from worker.cli.main import effective_settings_lines

    lines = effective_settings_lines(load_settings(source_topic="clicks",
                                                   elasticsearch_api_key="secret"))
    assert "SLUICE_DEAD_LETTER_TOPIC=  # unset: clicks.dlq (from SLUICE_SOURCE_TOPIC)" in lines
    assert "SLUICE_GROUP_INSTANCE_ID=  # unset" in lines
    assert "SLUICE_ELASTICSEARCH_API_KEY=***" in lines
    assert len(lines) == len(Settings.model_fields)


def test_misspelled_variable_is_reported_with_the_closest_setting(tmp_path: Path) -> None:
    from worker.config.unknown_settings import unknown_variable_warnings

    (tmp_path / ".env").write_text("SLUICE_S3_BUCKT=archive\n")
    warnings = unknown_variable_warnings(
        {"SLUICE_ELASTICSERCH_URL": "http://x:1", "SLUICE_SINKS": "s3", "SLUICE_ZZZ": "1",
         "PATH": "/bin"}, tmp_path / ".env")
    assert warnings == [
        "warning: SLUICE_ELASTICSERCH_URL is not a Sluice setting and is ignored (did you mean "
        "SLUICE_ELASTICSEARCH_URL? `sluice settings --markdown` lists every setting)",
        "warning: SLUICE_S3_BUCKT is not a Sluice setting and is ignored (did you mean "
        "SLUICE_S3_BUCKET? `sluice settings --markdown` lists every setting)",
        "warning: SLUICE_ZZZ is not a Sluice setting and is ignored (`sluice settings "
        "--markdown` lists every setting)",
    ]


def test_worker_help_says_where_configuration_comes_from() -> None:
    from typer.testing import CliRunner

    from worker.cli.main import cli

    result = CliRunner().invoke(cli, ["worker", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "SLUICE_* environment variables" in text and ".env file" in text
    assert "`sluice settings` prints the effective values" in text


def test_a_dated_index_pattern_with_a_data_stream_is_refused_naming_both_settings() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(elasticsearch_data_stream=True, elasticsearch_index="events-%Y.%m.%d")
    message = str(refused.value)
    assert "SLUICE_ELASTICSEARCH_DATA_STREAM" in message
    assert "SLUICE_ELASTICSEARCH_INDEX" in message and "Traceback" not in message
    assert load_settings(elasticsearch_data_stream=True, elasticsearch_index="events")


def test_commit_on_rebalance_needs_twice_the_drain_within_the_rebalance_timeout() -> None:
    # Drain and commit are each bounded by the drain timeout: 2 × 20 s do not fit in 30 s.
    assert load_settings(drain_timeout=20, rebalance_timeout=30)
    with pytest.raises(SettingsError) as refused:
        load_settings(drain_timeout=20, rebalance_timeout=30, commit_on_rebalance=True)
    assert "SLUICE_COMMIT_ON_REBALANCE" in str(refused.value)
    assert "SLUICE_REBALANCE_TIMEOUT" in str(refused.value)
    assert load_settings(drain_timeout=14, rebalance_timeout=30, commit_on_rebalance=True)


def test_elasticsearch_backpressure_is_reported_before_the_settle_watchdog_would_rewind() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(elasticsearch_backpressure_timeout=600, settle_timeout=600)
    assert "SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT" in str(refused.value)
    assert "SLUICE_SETTLE_TIMEOUT" in str(refused.value)
