"""HTTP ingest settings (`sluice ingest`)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class IngestForm(StrEnum):
    """The request body forms `sluice ingest` accepts, each on its own path(s)."""

    SEGMENT = "segment"
    FIREHOSE = "firehose"
    JSON = "json"
    # Segment's tracking API (/v1/batch, /v1/track, … and analytics.js's /v1/t, /v1/b, …):
    # opt-in, since it needs write keys and answers browsers.
    TRACKING = "tracking"


# Segment's documented limits of its tracking API ("Max request size", HTTP Tracking API).
SEGMENT_MAX_EVENT_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1024
SEGMENT_MAX_BATCH_EVENTS = 2500


class IngestSettings(BaseModel):
    """Where `sluice ingest` listens and whom it lets in."""

    ingest_host: str = Field("0.0.0.0", description="Address `sluice ingest` listens on.")
    ingest_port: int = Field(
        8080, ge=1, le=65535,
        description="Port of `sluice ingest`'s `/segment`, `/firehose` and `/events` paths "
        "(its `/metrics` and `/health/*` are on SLUICE_WEB_PORT, like the worker's).",
    )
    ingest_forms: Annotated[list[IngestForm], NoDecode] = Field(
        default_factory=lambda: [IngestForm.SEGMENT, IngestForm.FIREHOSE, IngestForm.JSON],
        description="Comma-separated request forms `sluice ingest` accepts: "
        + ", ".join(f"`{form.value}`" for form in IngestForm)
        + " (Segment's tracking API, `/v1/…`: add it to enable it). Each needs its credentials "
        "set, or the server refuses to start.",
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
    ingest_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDR networks of proxies in front of `sluice "
        "ingest` (a load balancer, an Ingress controller). Only a connection from one of them "
        "is believed about the client's address in `X-Forwarded-For`; empty (the default): the "
        "connection's own address is the client's, whatever the header says.",
    )

    ingest_write_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, repr=False,
        description="Tracking API: comma-separated `<write key>=<source id>[:<source name>]`. A "
        "request's write key (basic-auth user, or `writeKey` in the body) names the source every "
        "document of it carries (`source_id`, `source_name`). Changing it needs a restart; "
        "SLUICE_INGEST_WRITE_KEYS_FILE does not.",
    )
    ingest_write_keys_file: Path | None = Field(
        None,
        description="Tracking API: a file of write keys, one `<write key> <source id> [<source "
        "name>]` a line (`#` comments), re-read when it changes (at most once a second), so keys "
        "are added, rotated and revoked without a restart (e.g. a mounted Kubernetes Secret). "
        "Joined with SLUICE_INGEST_WRITE_KEYS.",
    )
    ingest_tracking_max_event_bytes: int = Field(
        SEGMENT_MAX_EVENT_BYTES, ge=1024,
        description="Tracking API: largest event (Segment's limit, 32 KB); a larger one fails its "
        "whole request with 400, as Segment answers.",
    )
    ingest_tracking_max_batch_bytes: int = Field(
        SEGMENT_MAX_BATCH_BYTES, ge=1024,
        description="Tracking API: largest request body after gzip decoding (Segment's limit for "
        "a batch, 500 KB); larger: 400.",
    )
    ingest_tracking_max_batch_events: int = Field(
        SEGMENT_MAX_BATCH_EVENTS, ge=1,
        description="Tracking API: most events in one batch (Segment's limit, 2,500); more: 400.",
    )
    ingest_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Tracking API: comma-separated origins (`https://shop.example.com`) whose "
        "pages may send events from a browser; `*` allows every origin (write keys are public "
        "in a page anyway: this decides which sites' pages a browser lets call, not who can "
        "send). Empty: no browser access. Preflight requests from other origins get 403.",
    )
    ingest_tracking_public_url: str | None = Field(
        None,
        description="Tracking API: the URL browsers reach `sluice ingest` at (e.g. "
        "`https://collect.example.com`), put in `/v1/projects/<write key>/settings` for "
        "analytics.js. Unset: the scheme and `Host` of the settings request itself.",
    )

    @field_validator("ingest_write_keys", "ingest_cors_origins", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ingest_write_keys")
    @classmethod
    def _write_keys_name_sources(cls, value: list[str]) -> list[str]:
        for entry in value:
            key, _, source = entry.partition("=")
            if not key.strip() or not source.partition(":")[0].strip():
                raise ValueError(f"{entry.partition('=')[0][:4]}…: expected "
                                 "`<write key>=<source id>[:<source name>]`")
        return value

    @field_validator("ingest_cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and (not origin.startswith(("http://", "https://"))
                                  or origin.rstrip("/").count("/") != 2):
                raise ValueError(f"{origin!r} is not an origin: `*`, or a scheme and host "
                                 "(and port) such as https://shop.example.com")
        return [origin.rstrip("/") for origin in value]

    @field_validator("ingest_trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ingest_trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network, e.g. "
                                 "10.0.0.0/8 or 192.0.2.7") from None
        return value
