"""Kafka settings: brokers, topics, the consumer group's start-up, TLS and SASL."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, Field, field_validator, model_validator

# Kafka topic names: the characters Kafka accepts, at most 249 of them.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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


class KafkaSettings(BaseModel):
    """Where the brokers are, which topics Sluice uses and how its clients connect."""

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
        "topic are picked up (and rebalanced), and those added to the catalog topic read, within "
        "this time, without a restart.",
    )

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

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap_servers(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",") if part.strip()]
        if not servers or not all(re.fullmatch(r"[^\s:/]+:\d{1,5}", s) for s in servers):
            raise ValueError("expected a comma-separated list of host:port, e.g. 127.0.0.1:9092")
        return ",".join(servers)

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        problems = security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def bootstrap_server_list(self) -> list[str]:
        """The brokers as a list, as aiokafka wants them."""
        return self.kafka_bootstrap_servers.split(",")


# Which protocols use TLS and which SASL; which mechanisms need a username and a password.
TLS_PROTOCOLS = {KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL}
SASL_PROTOCOLS = {KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL}
PASSWORD_MECHANISMS = {
    KafkaSaslMechanism.PLAIN, KafkaSaslMechanism.SCRAM_SHA_256, KafkaSaslMechanism.SCRAM_SHA_512,
}


def security_problems(settings: KafkaSettings) -> list[str]:
    """What is missing or contradictory in the SLUICE_KAFKA_* security settings."""
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    problems = []
    if protocol in SASL_PROTOCOLS and mechanism is None:
        problems.append(f"SLUICE_KAFKA_SECURITY_PROTOCOL={protocol.value} needs "
                        "SLUICE_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or "
                        "OAUTHBEARER)")
    if protocol not in SASL_PROTOCOLS and mechanism is not None:
        problems.append(f"SLUICE_KAFKA_SASL_MECHANISM={mechanism.value} needs "
                        "SLUICE_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)")
    if protocol in SASL_PROTOCOLS and mechanism in PASSWORD_MECHANISMS and not (
            settings.kafka_sasl_username and settings.kafka_sasl_password):
        problems.append(f"SLUICE_KAFKA_SASL_MECHANISM={mechanism.value} needs "
                        "SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD")
    tls_files = (settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file,
                 settings.kafka_ssl_key_file)
    if protocol not in TLS_PROTOCOLS and any(tls_files):
        problems.append("SLUICE_KAFKA_SSL_* files are set but SLUICE_KAFKA_SECURITY_PROTOCOL="
                        f"{protocol.value} does not use TLS (SSL or SASL_SSL)")
    if bool(settings.kafka_ssl_cert_file) != bool(settings.kafka_ssl_key_file):
        problems.append("SLUICE_KAFKA_SSL_CERT_FILE and SLUICE_KAFKA_SSL_KEY_FILE go together")
    return problems
