"""Elasticsearch sink settings."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, field_validator, model_validator

from worker.config.urls import check_http_url


class ElasticsearchSettings(BaseModel):
    """Where and how the Elasticsearch sink indexes documents."""

    elasticsearch_url: str = Field(
        "http://127.0.0.1:9200",
        description="Elasticsearch URL (comma-separated for several nodes), `http://` or "
        "`https://`; a user name and password in it are percent-encoded. Ignored when "
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
        description="Attempts for a document Elasticsearch answers with a 5xx before it is "
        "dead-lettered (retriable). Whole-request failures, and documents refused with 429 or "
        "`cluster_block_exception` (the cluster asking to wait), are retried without limit.",
    )
    elasticsearch_backpressure_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds a document refused with 429, `es_rejected_execution_exception`, "
        "`circuit_breaking_exception` or `cluster_block_exception` (a read-only index) may be "
        "held before the worker reports unready (`/health/ready`, an error in the log). It is "
        "never dead-lettered for it: the worker keeps retrying, consumption stays paused.",
    )
    elasticsearch_startup_timeout: float = Field(
        30.0, gt=0, description="Seconds a starting worker waits for Elasticsearch to answer."
    )

    @field_validator("elasticsearch_url")
    @classmethod
    def _urls_are_http_urls(cls, value: str) -> str:
        urls = [url for url in value.split(",") if url.strip()]
        if not urls:
            raise ValueError("no URL given (e.g. https://host:9200)")
        return ",".join(check_http_url(url) for url in urls)

    @model_validator(mode="after")
    def _data_stream_has_one_name(self) -> Self:
        # A data stream rolls its own backing indices over; a dated name would create a new
        # data stream per day, each with its own backing indices and template match.
        if self.elasticsearch_data_stream and "%" in self.elasticsearch_index:
            raise ValueError(
                f"SLUICE_ELASTICSEARCH_DATA_STREAM=true needs a fixed name in "
                f"SLUICE_ELASTICSEARCH_INDEX, not a date pattern "
                f"({self.elasticsearch_index!r}): a data stream rolls over by itself. Set "
                "SLUICE_ELASTICSEARCH_INDEX to a name without `%` (e.g. `events`), or "
                "SLUICE_ELASTICSEARCH_DATA_STREAM=false for daily indices"
            )
        return self

    @model_validator(mode="after")
    def _one_elasticsearch_credential(self) -> Self:
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
