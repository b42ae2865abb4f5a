"""HTTP ingest settings (`sluice ingest`)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class IngestForm(StrEnum):
    """The request body forms `sluice ingest` accepts, each on its own path."""

    SEGMENT = "segment"
    FIREHOSE = "firehose"
    JSON = "json"


class IngestSettings(BaseModel):
    """Where `sluice ingest` listens and whom it lets in."""

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
    ingest_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDR networks of proxies in front of `sluice "
        "ingest` (a load balancer, an Ingress controller). Only a connection from one of them "
        "is believed about the client's address in `X-Forwarded-For`; empty (the default): the "
        "connection's own address is the client's, whatever the header says.",
    )

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
