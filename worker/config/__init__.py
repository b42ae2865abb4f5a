"""The one settings object of Sluice.

Every setting is read from an environment variable named ``SLUICE_<FIELD>`` (or from a ``.env``
file in the working directory), is typed, has a default that works against the local stack, and
a description. The README's settings table is produced from this model
(``sluice settings --markdown``), so the two cannot drift apart.

The settings are declared by group, one module each (``kafka``, ``pipeline``, ``elasticsearch``,
``s3``, ``iceberg``, ``ingest``, ``ingest_limits``, ``kibana``); ``Settings`` joins the groups
into the one validated object every part of Sluice receives, and holds the rules that span
groups. ``unknown_settings`` finds misspelled ``SLUICE_*`` variables.

Imports: nothing of Sluice. Every other package imports the settings, so a settings module that
imported one of them would make a circle; what a setting's check needs (the key template's
grammar, the Kafka security rules) lives here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self, get_args, get_origin

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.elasticsearch import ElasticsearchSettings
from worker.config.event_time import EventTimeSettings
from worker.config.iceberg import IcebergCatalogType, IcebergPartitionBy, IcebergSettings
from worker.config.ingest import IngestForm, IngestSettings
from worker.config.ingest_limits import IngestLimitSettings
from worker.config.kafka import (
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    KafkaSettings,
    TopicName,
)
from worker.config.kibana import KibanaSettings
from worker.config.pipeline import PipelineSettings, SinkName
from worker.config.s3 import S3AddressingStyle, S3Format, S3Publish, S3Settings, S3TimeField
from worker.config.urls import REDACTED, redact_url, redact_urls

__all__ = [
    "ENV_PREFIX", "IcebergCatalogType", "IcebergPartitionBy", "IngestForm", "KafkaSaslMechanism",
    "KafkaSecurityProtocol", "LogFormat", "LogLevel", "S3AddressingStyle", "S3Format", "S3Publish",
    "S3TimeField", "Settings",
    "SettingsError", "SinkName", "TopicName", "format_validation_error", "load_settings",
    "redact_url", "redact_urls", "settings_table_markdown",
]

ENV_PREFIX = "SLUICE_"


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    """The least severe level that is logged."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# Bases are listed last group first: pydantic orders fields from the last base to the first, so
# the settings table reads Kafka, pipeline, Elasticsearch, S3, Iceberg, event time, ingest and its
# limits, Kibana, then the worker's own.
class Settings(
    KibanaSettings, IngestLimitSettings, IngestSettings, EventTimeSettings, IcebergSettings,
    S3Settings, ElasticsearchSettings, PipelineSettings, KafkaSettings, BaseSettings,
):
    """All of Sluice's configuration, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        use_enum_values=False,
    )

    # --- Worker ----------------------------------------------------------------------------
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="HTTP port of the status page `/`, `/metrics`, `/health/live` and "
        "`/health/ready`; 0 disables it.",
    )
    web_host: str = Field(
        "0.0.0.0", description="Address the HTTP endpoints (status page included) listen on."
    )
    state_dir: Path = Field(
        Path(".sluice/worker"),
        description="Directory for the worker's local state (Faust's data directory).",
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="Least severe level that is logged.")
    log_format: LogFormat = Field(LogFormat.TEXT, description="`text` or `json` log lines.")

    # --- Local stack (development and tests only) ------------------------------------------
    stack_dir: Path = Field(
        Path(".sluice/stack"),
        description="Where `sluice stack` keeps the local servers' data, logs and pid files.",
    )
    stack_ready_timeout: float = Field(
        60.0, gt=0, description="Seconds `sluice stack up` waits for each server to be ready."
    )


    @model_validator(mode="after")
    def _backpressure_is_reported_before_the_watchdog_rewinds(self) -> Self:
        # A sink that reports a problem keeps the settle watchdog from rewinding its partitions:
        # Elasticsearch backpressure must be reported before the watchdog would act.
        if self.elasticsearch_backpressure_timeout >= self.settle_timeout:
            raise ValueError(
                f"SLUICE_ELASTICSEARCH_BACKPRESSURE_TIMEOUT "
                f"({self.elasticsearch_backpressure_timeout:g}s) must be shorter than "
                f"SLUICE_SETTLE_TIMEOUT ({self.settle_timeout:g}s)"
            )
        return self

    @model_validator(mode="after")
    def _ingest_limits_fit_together(self) -> Self:
        # A body of the largest size must fit in the budget, or it could never be read.
        if self.ingest_body_budget_bytes < self.ingest_max_body_bytes:
            raise ValueError(
                f"SLUICE_INGEST_BODY_BUDGET_BYTES ({self.ingest_body_budget_bytes}) must be at "
                f"least SLUICE_INGEST_MAX_BODY_BYTES ({self.ingest_max_body_bytes})")
        if not (self.ingest_max_body_bytes <= self.ingest_unverified_body_bytes
                <= self.ingest_body_budget_bytes):
            raise ValueError(
                f"SLUICE_INGEST_UNVERIFIED_BODY_BYTES ({self.ingest_unverified_body_bytes}) is "
                f"a part of SLUICE_INGEST_BODY_BUDGET_BYTES ({self.ingest_body_budget_bytes}) "
                f"that a signed body of SLUICE_INGEST_MAX_BODY_BYTES "
                f"({self.ingest_max_body_bytes}) must fit in: between the two")
        # analytics.js names its write key in the body, which is read before it is verified: a
        # batch of the largest size must fit the unverified part, or it could never be read.
        if (IngestForm.TRACKING in self.ingest_forms
                and self.ingest_unverified_body_bytes < self.ingest_tracking_max_batch_bytes):
            raise ValueError(
                f"SLUICE_INGEST_UNVERIFIED_BODY_BYTES ({self.ingest_unverified_body_bytes}) must "
                f"be at least SLUICE_INGEST_TRACKING_MAX_BATCH_BYTES "
                f"({self.ingest_tracking_max_batch_bytes}) with the `tracking` form: a batch "
                "whose write key is in its body is read before the key is verified")
        # A transaction lasts at most the produce timeout and its commit.
        if self.ingest_transaction_timeout <= self.ingest_produce_timeout + 1:
            raise ValueError(
                f"SLUICE_INGEST_TRANSACTION_TIMEOUT ({self.ingest_transaction_timeout:g}s) must "
                f"be longer than SLUICE_INGEST_PRODUCE_TIMEOUT "
                f"({self.ingest_produce_timeout:g}s) plus one second")
        return self

    @field_validator("sinks", "s3_csv_columns", "ingest_forms", "ingest_bearer_tokens",
                     mode="before")
    @classmethod
    def _split_sinks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "s3_endpoint_url", "aws_access_key_id", "aws_secret_access_key", "elasticsearch_cloud_id",
        "elasticsearch_api_key", "elasticsearch_username", "elasticsearch_password",
        "elasticsearch_ca_certs", "s3_server_side_encryption", "s3_sse_kms_key_id",
        "s3_storage_class", "ingest_segment_shared_secret", "ingest_segment_username",
        "ingest_segment_password", "ingest_firehose_access_key",
        "ingest_transactional_id_prefix", "kafka_sasl_mechanism",
        "kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_oauth_token",
        "kafka_aws_region", "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file",
        "kafka_ssl_key_password", "s3_ca_bundle", "kibana_api_key", "kibana_username",
        "kibana_password", "kibana_ca_certs", "ingest_write_keys_file",
        "ingest_tracking_public_url", "iceberg_catalog_uri", "iceberg_catalog_token",
        mode="before",
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def dead_letter_topic_name(self) -> str:
        """The dead-letter topic, derived from the source topic unless set."""
        return self.dead_letter_topic or f"{self.source_topic}.dlq"

    def as_environment(self, hide_secrets: bool = False) -> dict[str, str]:
        """The settings as SLUICE_* variables: a child process given these sees the same values."""
        environment = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, list):
                text = ",".join(_plain(item) for item in value)
            else:
                text = _plain(value)
            if hide_secrets and field.repr is False:
                text = REDACTED if text else ""  # a secret that is not set is not hidden
            elif hide_secrets:
                text = redact_urls(text)  # user:password in any URL setting
            environment[f"{ENV_PREFIX}{name.upper()}"] = text
        return environment


def _plain(value: object) -> str:
    return value.value if isinstance(value, StrEnum) else str(value)


class SettingsError(Exception):
    """A setting has a value that is not accepted; the message names it for a person."""


def format_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error into lines that name each environment variable and what it accepts.

    A secret's value is not repeated, and URLs are shown without their user information."""
    lines = ["Invalid configuration:"]
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule across settings: its message names them
            lines.append(f"  {redact_urls(message)}")
            continue
        field, *inner = item["loc"]
        variable = f"{ENV_PREFIX}{str(field).upper()}"
        where = f" (item {inner[0] + 1})" if inner and isinstance(inner[0], int) else ""
        secret = field in Settings.model_fields and Settings.model_fields[str(field)].repr is False
        given = REDACTED if secret else redact_urls(repr(item.get("input")))
        lines.append(f"  {variable}{where}={given}: {redact_urls(message)}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise SettingsError with a readable message if invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(format_validation_error(error)) from error


def _type_name(annotation: object) -> str:
    """`int`, `str (optional)` or the accepted values of an enum, for the settings table."""
    members = [a for a in get_args(annotation) if a is not type(None)]
    optional = len(members) < len(get_args(annotation))
    inner = members[0] if optional and len(members) == 1 else annotation
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if isinstance(inner, type) and issubclass(inner, StrEnum):
        name = " \\| ".join(f"`{member.value}`" for member in inner)
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} (optional)" if optional else name


def settings_table_markdown() -> str:
    """A Markdown table of every setting: variable, type, default, description."""
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        type_name = _type_name(annotation)
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):  # as the variable would be written: comma-separated
            default = ",".join(_plain(item) for item in default)
        elif isinstance(default, StrEnum):
            default = default.value
        shown_default = "" if default in (None, "") else f"`{default}`"
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {type_name} | {shown_default} | "
            f"{field.description} |"
        )
    return "\n".join(rows)
