"""The one settings object of Sluice.

Every setting is read from an environment variable named ``SLUICE_<FIELD>`` (or from a ``.env``
file in the working directory), is typed, has a default that works against the local stack, and
a description. The README's settings table is produced from this model
(``sluice settings --markdown``), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, get_args, get_origin

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "SLUICE_"

# Kafka topic names: the characters Kafka accepts, at most 249 of them.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class SinkName(StrEnum):
    """The sinks a worker can deliver to."""

    COUNTING = "counting"
    ELASTICSEARCH = "elasticsearch"
    S3 = "s3"


class S3TimeField(StrEnum):
    """Which time files an event under its hour in S3."""

    RECEIVED_AT = "received_at"
    TIMESTAMP = "timestamp"


class S3Format(StrEnum):
    """The line format of S3 objects."""

    NDJSON = "ndjson"
    CSV = "csv"


class IngestForm(StrEnum):
    """The request body forms `sluice ingest` accepts, each on its own path."""

    SEGMENT = "segment"
    FIREHOSE = "firehose"
    JSON = "json"


class S3AddressingStyle(StrEnum):
    """How the bucket is named in S3 requests."""

    AUTO = "auto"
    PATH = "path"
    VIRTUAL = "virtual"


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


class KafkaSecurityProtocol(StrEnum):
    """How Kafka clients talk to the brokers: TLS or not, SASL or not."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    """The SASL mechanisms Sluice's Kafka clients can authenticate with."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


TopicName = Annotated[str, Field(pattern=_TOPIC_NAME.pattern)]


class Settings(BaseSettings):
    """All of Sluice's configuration, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        use_enum_values=False,
    )

    # --- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Comma-separated `host:port` list of Kafka brokers to bootstrap from.",
    )
    app_id: str = Field(
        "sluice",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Faust application id; also the Kafka consumer group of the workers.",
    )
    source_topic: TopicName = Field(
        "sluice-events", description="Topic that producers write raw events to."
    )
    dead_letter_topic: TopicName | None = Field(
        None,
        description="Topic for records that could not be delivered. Default: `<source_topic>.dlq`.",
    )
    catalog_topic: TopicName = Field(
        "sluice-catalog",
        description="Compacted topic holding the API-key → customer / usage-plan catalog.",
    )
    topic_partitions: int = Field(
        4,
        ge=1,
        le=10_000,
        description="Partitions of the source and dead-letter topics when Sluice creates them.",
    )
    topic_replication_factor: int = Field(
        1, ge=1, le=32, description="Replication factor of the topics Sluice creates."
    )
    dead_letter_retention_days: float = Field(
        14.0, gt=0,
        description="Retention of the dead-letter topic when Sluice creates it: time to notice, "
        "fix and replay.",
    )
    kafka_startup_timeout: float = Field(
        30.0, gt=0,
        description="Seconds a starting worker waits for a broker of "
        "SLUICE_KAFKA_BOOTSTRAP_SERVERS to answer before it exits saying so.",
    )
    metadata_refresh_interval: float = Field(
        60.0, gt=0,
        description="Seconds between topic metadata refreshes: partitions added to the source "
        "topic are picked up (and rebalanced) within this time, without a restart.",
    )

    # --- Kafka security (every Kafka client; worker.kafka_connection) ----------------------
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        KafkaSecurityProtocol.PLAINTEXT,
        description="`PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` or `SASL_SSL` (SASL over TLS: "
        "MSK, Confluent Cloud, Aiven, Redpanda Cloud).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None,
        description="SASL mechanism for the SASL_* protocols: `PLAIN`, `SCRAM-SHA-256`, "
        "`SCRAM-SHA-512` or `OAUTHBEARER` (AWS MSK IAM tokens unless "
        "SLUICE_KAFKA_SASL_OAUTH_TOKEN is set).",
    )
    kafka_sasl_username: str | None = Field(
        None, description="SASL user name (PLAIN and SCRAM)."
    )
    kafka_sasl_password: str | None = Field(
        None, repr=False, description="SASL password (PLAIN and SCRAM)."
    )
    kafka_sasl_oauth_token: str | None = Field(
        None,
        repr=False,
        description="A fixed OAUTHBEARER token; empty: AWS MSK IAM tokens signed with the "
        "standard AWS credential chain (environment, profile, IRSA, instance role).",
    )
    kafka_aws_region: str | None = Field(
        None,
        description="Region of the MSK cluster, for IAM tokens; empty: SLUICE_S3_REGION.",
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="CA bundle (PEM) that signed the brokers' certificates; empty: the "
        "system's trusted CAs.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    kafka_ssl_key_file: Path | None = Field(
        None, description="Private key (PEM) of the client certificate."
    )
    kafka_ssl_key_password: str | None = Field(
        None, repr=False, description="Password of the client key, if it is encrypted."
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        description="Check that a broker's certificate names the host connected to (switch "
        "off only for testing).",
    )

    # --- Pipeline ---------------------------------------------------------------------------
    sinks: Annotated[list[SinkName], NoDecode] = Field(
        default_factory=lambda: [SinkName.ELASTICSEARCH, SinkName.S3],
        description="Comma-separated sinks every event is delivered to: "
        + ", ".join(f"`{name.value}`" for name in SinkName)
        + ".",
    )
    max_record_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Records larger than this are dead-lettered as `RecordTooLarge`.",
    )
    max_in_flight_records: int = Field(
        250_000,
        ge=1,
        description="Records consumed but not yet acknowledged by every sink; consumption "
        "pauses at this bound (backpressure).",
    )
    drain_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a worker waits for its sinks to flush on a rebalance or at "
        "shutdown before leaving unfinished records to be consumed again.",
    )
    batch_max_records: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Records of one partition handed to the pipeline as one batch, at most: "
        "a fetch is split so that partitions take turns (fairness); larger batches cost less "
        "per record.",
    )
    settle_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds a partition's oldest record may wait for every sink before the "
        "worker reports unready (`/health/ready`); past it, if every sink's destination "
        "answers, the worker rewinds the partition so it is consumed again from its oldest "
        "unsettled record (a stuck partition is recovered, never silently stalled).",
    )
    catalog_load_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a starting worker waits to read the whole catalog topic before "
        "it processes events (it starts anyway, with what it has, and says so).",
    )
    catalog_poll_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds an idle catalog reader waits before it asks the catalog topic "
        "for updates again (an update reaches every worker within about this time).",
    )
    group_instance_id: str | None = Field(
        None,
        description="A stable, unique name for this worker in the consumer group (static "
        "membership, e.g. the pod name of a StatefulSet): a restarted worker takes its old place "
        "instead of triggering a rebalance. Apache Kafka only: the local stack's broker never "
        "expires a static member that stopped. Empty: a new member each start.",
    )
    commit_on_rebalance: bool = Field(
        False,
        description="Commit what the sinks flushed when partitions are revoked in a rebalance. "
        "Fewer records are consumed twice by the next owner (the sinks skip them either way), "
        "but some Kafka-compatible brokers (the local stack's) answer that commit with "
        "ILLEGAL_GENERATION, the worker rejoins as a new member and the group can hang: enable "
        "it on Apache Kafka only.",
    )
    session_timeout: float = Field(
        30.0,
        ge=6,
        le=300,
        description="Seconds without a heartbeat after which the group gives a worker's "
        "partitions to the others: how long the partitions of a killed or cut-off worker wait.",
    )
    rebalance_timeout: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Seconds the group waits for every member to rejoin in a rebalance (each "
        "first drains its sinks, up to SLUICE_DRAIN_TIMEOUT). Some brokers (the local stack's) "
        "also wait this long for a member that was killed.",
    )
    heartbeat_interval: float = Field(
        3.0,
        gt=0,
        description="Seconds between a worker's heartbeats to the group (at most a third of "
        "SLUICE_SESSION_TIMEOUT).",
    )
    commit_interval: float = Field(
        2.8,
        gt=0,
        description="Seconds between offset commits (only offsets every sink has acknowledged "
        "are ever committed).",
    )
    counting_sink_flush_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds the counting sink holds events before it reports them delivered.",
    )
    counting_sink_record_path: Path | None = Field(
        None,
        description="If set, the counting sink appends one JSON line per delivered event here "
        "(used by tests and the demo).",
    )

    # --- Elasticsearch / S3 (sinks) --------------------------------------------------------
    elasticsearch_url: str = Field(
        "http://127.0.0.1:9200",
        pattern=r"^https?://",
        description="Elasticsearch URL (comma-separated for several nodes). Ignored when "
        "`SLUICE_ELASTICSEARCH_CLOUD_ID` is set.",
    )
    elasticsearch_cloud_id: str | None = Field(
        None, description="Elastic Cloud deployment id, instead of a URL."
    )
    elasticsearch_api_key: str | None = Field(
        None,
        repr=False,
        description="API key, the Base64 `encoded` form Elasticsearch returns when creating one.",
    )
    elasticsearch_username: str | None = Field(None, description="Basic-auth user name.")
    elasticsearch_password: str | None = Field(
        None, repr=False, description="Basic-auth password."
    )
    elasticsearch_ca_certs: Path | None = Field(
        None, description="CA bundle (PEM) to verify the cluster's TLS certificate."
    )
    elasticsearch_verify_certs: bool = Field(
        True, description="Verify the cluster's TLS certificate (switch off only for testing)."
    )
    elasticsearch_index: str = Field(
        "events-%Y.%m.%d",
        min_length=1,
        description="Index name, as a strftime pattern of the event's `timestamp` (UTC): the "
        "default writes daily indices; a name without `%` is one fixed index or data stream.",
    )
    elasticsearch_data_stream: bool = Field(
        False,
        description="Write to a data stream (`create` operations, `@timestamp` added) instead "
        "of indices.",
    )
    elasticsearch_install_template: bool = Field(
        True,
        description="Install (or update) the index template for the index pattern at start-up.",
    )
    elasticsearch_template_name: str = Field(
        "sluice-events", description="Name of the index template Sluice installs."
    )
    elasticsearch_batch_max_events: int = Field(
        1000, ge=1, description="A bulk request is sent when it holds this many events …"
    )
    elasticsearch_batch_max_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, description="… or this many bytes …"
    )
    elasticsearch_batch_max_age: float = Field(
        1.0, gt=0, description="… or when its oldest event has waited this many seconds."
    )
    elasticsearch_max_in_flight_requests: int = Field(
        4, ge=1, le=64, description="Bulk requests in flight at once."
    )
    elasticsearch_request_timeout: float = Field(
        30.0, gt=0, description="Seconds before a bulk request counts as failed (and is retried)."
    )
    elasticsearch_retry_initial: float = Field(
        0.5, gt=0, description="First retry delay in seconds; doubles per attempt, with jitter."
    )
    elasticsearch_retry_max: float = Field(
        30.0, gt=0, description="Longest retry delay in seconds."
    )
    elasticsearch_item_max_attempts: int = Field(
        10,
        ge=1,
        description="Attempts for a document Elasticsearch answers with 429 or 5xx before it is "
        "dead-lettered (retriable). Whole-request failures are retried without limit.",
    )
    elasticsearch_startup_timeout: float = Field(
        30.0, gt=0, description="Seconds a starting worker waits for Elasticsearch to answer."
    )
    s3_endpoint_url: str | None = Field(
        "http://127.0.0.1:8333",
        description="S3 endpoint for S3-compatible servers; empty for AWS's own endpoints.",
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_bucket: str = Field(
        "sluice-archive",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket that hourly archive files are written to.",
    )
    aws_access_key_id: str | None = Field(
        None,
        description="S3 access key; empty: the standard AWS credential chain (AWS_* environment, "
        "shared files, IRSA, instance role). `sluice stack`, `sluice demo` and the tests use "
        "the local stack's keys.",
    )
    aws_secret_access_key: str | None = Field(
        None,
        description="S3 secret key; empty: the standard AWS credential chain.",
        repr=False,
    )
    s3_addressing_style: S3AddressingStyle = Field(
        S3AddressingStyle.AUTO,
        description="`auto` (path-style with SLUICE_S3_ENDPOINT_URL, virtual-hosted on AWS), "
        "`path` or `virtual`.",
    )
    s3_ca_bundle: Path | None = Field(
        None,
        description="CA bundle (PEM) to verify the S3 endpoint's TLS certificate; empty: the "
        "system's trusted CAs.",
    )
    s3_prefix: str = Field(
        "", description="Prefix of every object key (e.g. `logs/`); `/` is added if missing."
    )
    s3_key_template: str = Field(
        "hive",
        description="Directory of an object under the prefix: `hive` "
        "(`year=YYYY/month=MM/day=DD/hour=HH/`), `segment` "
        "(`segment-logs/{source_id}/{received_day}/`) or a template with `{year}`, `{month}`, "
        "`{day}`, `{hour}`, `{date}`, `{received_day}`, `{source_id}`, `{event_type}`, "
        "`{topic}`, `{partition}`.",
    )
    s3_time_field: S3TimeField = Field(
        S3TimeField.RECEIVED_AT,
        description="Which time files an event under its hour: `received_at` or `timestamp` "
        "(event time).",
    )
    s3_format: S3Format = Field(
        S3Format.NDJSON, description="Object format: gzip `ndjson` (one document per line) or "
        "gzip `csv`."
    )
    s3_csv_columns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CSV columns, comma-separated `name=path.in.document` (or `name`); default "
        "event_id, type, event, timestamp, received_at, user_id, anonymous_id, api_key_id, "
        "customer_id, usage_plan_name, status.",
    )
    s3_part_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024,
        description="A partition's open parts are uploaded when one reaches this compressed size …",
    )
    s3_part_max_events: int = Field(
        1_000_000, ge=1, description="… or holds this many events …"
    )
    s3_part_max_age: float = Field(
        300.0, gt=0, description="… or its oldest event has waited this many seconds …"
    )
    s3_hour_close_grace: float = Field(
        60.0, ge=0,
        description="… or this many seconds after its hour has ended (late events of a closed "
        "hour get a part of their own).",
    )
    s3_max_buffered_events: int = Field(
        100_000, ge=1,
        description="Events held in open parts across partitions; past it the fullest partition "
        "is uploaded early (keep below SLUICE_MAX_IN_FLIGHT_RECORDS).",
    )
    s3_multipart_threshold: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024,
        description="Parts larger than this are uploaded with multipart upload.",
    )
    s3_multipart_chunk_bytes: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Chunk size of multipart uploads."
    )
    s3_gzip_level: int = Field(
        1, ge=0, le=3,
        description="gzip level of objects (igzip, 0-3). 1: about 18 times the speed of zlib's "
        "level 6 for about 20% more bytes (measured with `python -m bench.codecs`).",
    )
    s3_server_side_encryption: str | None = Field(
        None, description="`AES256` or `aws:kms` (server-side encryption of objects)."
    )
    s3_sse_kms_key_id: str | None = Field(None, description="KMS key for `aws:kms` encryption.")
    s3_storage_class: str | None = Field(
        None, description="Storage class of objects, e.g. `STANDARD_IA`; empty for the default."
    )
    s3_create_bucket: bool = Field(
        True, description="Create the bucket at start-up if it does not exist."
    )
    s3_retry_initial: float = Field(0.5, gt=0, description="First S3 retry delay in seconds.")
    s3_retry_max: float = Field(30.0, gt=0, description="Longest S3 retry delay in seconds.")
    s3_startup_timeout: float = Field(
        30.0, gt=0, description="Seconds a starting worker waits for S3 to answer."
    )

    # --- Worker ----------------------------------------------------------------------------
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="HTTP port of `/metrics`, `/health/live` and `/health/ready`; 0 disables it.",
    )
    web_host: str = Field("0.0.0.0", description="Address the HTTP endpoints listen on.")
    state_dir: Path = Field(
        Path(".sluice/worker"),
        description="Directory for the worker's local state (Faust's data directory).",
    )
    log_level: LogLevel = Field(LogLevel.INFO, description="Least severe level that is logged.")
    log_format: LogFormat = Field(LogFormat.TEXT, description="`text` or `json` log lines.")

    # --- HTTP ingest (`sluice ingest`) -----------------------------------------------------
    ingest_host: str = Field("0.0.0.0", description="Address `sluice ingest` listens on.")
    ingest_port: int = Field(
        8080, ge=1, le=65535,
        description="Port of `sluice ingest`'s `/segment`, `/firehose` and `/events` paths "
        "(its `/metrics` and `/health/*` are on SLUICE_WEB_PORT, like the worker's).",
    )
    ingest_forms: Annotated[list[IngestForm], NoDecode] = Field(
        default_factory=lambda: list(IngestForm),
        description="Comma-separated request forms `sluice ingest` accepts: "
        + ", ".join(f"`{form.value}`" for form in IngestForm)
        + ". Each needs its credentials set, or the server refuses to start.",
    )
    ingest_segment_shared_secret: str | None = Field(
        None, repr=False,
        description="Segment webhooks: the shared secret; a request's `X-Signature` must be the "
        "hex HMAC-SHA1 of its body with it.",
    )
    ingest_segment_username: str | None = Field(
        None, description="Segment webhooks: basic-auth user name (instead of, or besides, the "
        "shared secret)."
    )
    ingest_segment_password: str | None = Field(
        None, repr=False, description="Segment webhooks: basic-auth password."
    )
    ingest_firehose_access_key: str | None = Field(
        None, repr=False,
        description="Firehose HTTP-endpoint deliveries: the access key Firehose sends in "
        "`X-Amz-Firehose-Access-Key`.",
    )
    ingest_bearer_tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list, repr=False,
        description="Plain JSON / NDJSON POSTs: comma-separated bearer tokens accepted in "
        "`Authorization: Bearer …` (several, to rotate them).",
    )
    ingest_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024,
        description="Largest request body (after gzip decoding) `sluice ingest` reads; larger "
        "ones get 413 and nothing of them is produced. Keep Firehose's buffering size (and "
        "Segment's batch size) below it.",
    )
    ingest_produce_timeout: float = Field(
        4.0, gt=0,
        description="Seconds a request waits for the broker to acknowledge all its records before "
        "it is answered 503 (Segment gives up on a webhook after 5 s).",
    )
    ingest_retry_after: int = Field(
        5, ge=1, description="Seconds in the `Retry-After` header of a 503 answer."
    )

    # --- Local stack (development and tests only) ------------------------------------------
    stack_dir: Path = Field(
        Path(".sluice/stack"),
        description="Where `sluice stack` keeps the local servers' data, logs and pid files.",
    )
    stack_ready_timeout: float = Field(
        60.0, gt=0, description="Seconds `sluice stack up` waits for each server to be ready."
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap_servers(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers or not all(re.fullmatch(r"[^\s:/]+:\d{1,5}", s) for s in servers):
            raise ValueError("expected a comma-separated list of host:port, e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @field_validator("s3_key_template")
    @classmethod
    def _check_key_template(cls, value: str) -> str:
        from worker.sinks.s3_keys import resolve_template

        resolve_template(value)
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("sinks", "s3_csv_columns", "ingest_forms", "ingest_bearer_tokens",
                     mode="before")
    @classmethod
    def _split_sinks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _drain_fits_the_rebalance(self) -> Settings:
        if self.drain_timeout >= self.rebalance_timeout:
            raise ValueError(
                f"SLUICE_DRAIN_TIMEOUT ({self.drain_timeout:g}s) must be shorter than "
                f"SLUICE_REBALANCE_TIMEOUT ({self.rebalance_timeout:g}s): a member that drains "
                "longer is expelled from the group"
            )
        return self

    @model_validator(mode="after")
    def _settling_outlasts_the_drain(self) -> Settings:
        if self.settle_timeout <= self.drain_timeout:
            raise ValueError(
                f"SLUICE_SETTLE_TIMEOUT ({self.settle_timeout:g}s) must be longer than "
                f"SLUICE_DRAIN_TIMEOUT ({self.drain_timeout:g}s)"
            )
        return self

    @model_validator(mode="after")
    def _heartbeats_fit_the_session(self) -> Settings:
        if self.heartbeat_interval * 3 > self.session_timeout:
            raise ValueError(
                f"SLUICE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g}s) must be at most a third "
                f"of SLUICE_SESSION_TIMEOUT ({self.session_timeout:g}s)"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        from worker.kafka_connection import security_problems

        problems = security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _one_elasticsearch_credential(self) -> Settings:
        basic_auth = self.elasticsearch_username or self.elasticsearch_password
        if self.elasticsearch_api_key and basic_auth:
            raise ValueError(
                "set either SLUICE_ELASTICSEARCH_API_KEY or SLUICE_ELASTICSEARCH_USERNAME/"
                "PASSWORD, not both"
            )
        if bool(self.elasticsearch_username) != bool(self.elasticsearch_password):
            raise ValueError(
                "SLUICE_ELASTICSEARCH_USERNAME and SLUICE_ELASTICSEARCH_PASSWORD go together"
            )
        return self

    @field_validator(
        "s3_endpoint_url", "aws_access_key_id", "aws_secret_access_key", "elasticsearch_cloud_id",
        "elasticsearch_api_key", "elasticsearch_username", "elasticsearch_password",
        "elasticsearch_ca_certs", "s3_server_side_encryption", "s3_sse_kms_key_id",
        "s3_storage_class", "ingest_segment_shared_secret", "ingest_segment_username",
        "ingest_segment_password", "ingest_firehose_access_key", "kafka_sasl_mechanism",
        "kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_oauth_token",
        "kafka_aws_region", "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file",
        "kafka_ssl_key_password", "s3_ca_bundle", mode="before",
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
                text = "***"
            elif hide_secrets and name == "elasticsearch_url":
                text = redact_url(text)  # user:password in the URL
            environment[f"{ENV_PREFIX}{name.upper()}"] = text
        return environment

    @property
    def s3_addressing_style_for_endpoint(self) -> str:
        """`path` or `virtual`: `auto` is path-style for a custom endpoint, else virtual."""
        if self.s3_addressing_style != S3AddressingStyle.AUTO:
            return self.s3_addressing_style.value
        return "path" if self.s3_endpoint_url else "virtual"

    @property
    def bootstrap_server_list(self) -> list[str]:
        """The brokers as a list, as aiokafka wants them."""
        return self.kafka_bootstrap_servers.split(",")


def redact_url(url: str) -> str:
    """The URL without a user name or password in it (``https://***@host:9200``)."""
    return re.sub(r"//[^/@]+@", "//***@", url.strip())


def _plain(value: object) -> str:
    return value.value if isinstance(value, StrEnum) else str(value)


class SettingsError(Exception):
    """A setting has a value that is not accepted; the message names it for a person."""


def format_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error into lines that name each environment variable and what it accepts."""
    lines = ["Invalid configuration:"]
    for item in error.errors():
        if not item["loc"]:  # a rule across settings: its message names them
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
            continue
        field, *inner = item["loc"]
        variable = f"{ENV_PREFIX}{str(field).upper()}"
        where = f" (item {inner[0] + 1})" if inner and isinstance(inner[0], int) else ""
        given = item.get("input")
        lines.append(f"  {variable}{where}={given!r}: {item['msg']}")
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
