"""Limits of `sluice ingest` facing the open internet: connections, deadlines, memory, rates.

The defaults are sized for one `sluice ingest` in a pod with a 512 MiB memory limit: about
70 MiB for the process itself, up to 1,024 connections of a few KiB each (plus at most
SLUICE_INGEST_MAX_HEADER_BYTES of headers each while they arrive), the rate limits' memory
(12 MiB per limit at most), and request bodies held at once bounded by
SLUICE_INGEST_BODY_BUDGET_BYTES. A body becomes Python objects while it is decoded: a Segment
batch takes up to ten times its size for a moment, so 32 MiB of bodies can mean about 320 MiB at
the peak. Each limit says what it protects and what a request over it gets.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

KIB, MIB = 1024, 1024 * 1024


class IngestLimitSettings(BaseModel):
    """What `sluice ingest` allows a client before and after it knows who the client is."""

    ingest_max_connections: int = Field(
        1024, ge=1,
        description="Open connections `sluice ingest` keeps at most. A new connection over it "
        "takes the place of the longest-idle keep-alive connection, or, when none is idle, is "
        "answered 503 with Retry-After and closed. Keep it below the process's open-file limit.",
    )
    ingest_keepalive_timeout: float = Field(
        75.0, gt=0,
        description="Seconds an idle keep-alive connection stays open. Longer than a load "
        "balancer's idle timeout (60 s on AWS), so the balancer, not `sluice ingest`, closes "
        "idle connections and never sends a request on one being closed.",
    )
    ingest_header_timeout: float = Field(
        10.0, gt=0,
        description="Seconds from a request's first byte to the end of its headers; a slower "
        "request is answered 408 and its connection closed (slowloris).",
    )
    ingest_max_header_bytes: int = Field(
        16 * KIB, ge=1024,
        description="Bytes of request line and headers a request may send; more is answered 431 "
        "and the connection closed, so a connection's unfinished headers hold little memory.",
    )
    ingest_body_timeout: float = Field(
        10.0, gt=0,
        description="Seconds a request body may take, plus one second for every "
        "SLUICE_INGEST_BODY_MIN_RATE bytes received; a slower body is answered 408 and its "
        "connection closed.",
    )
    ingest_body_min_rate: int = Field(
        32 * KIB, ge=1,
        description="Bytes per second a request body must arrive at, beyond "
        "SLUICE_INGEST_BODY_TIMEOUT's grace (32 KiB/s: a slow mobile link).",
    )
    ingest_body_budget_bytes: int = Field(
        32 * MIB, ge=1024,
        description="Bytes of request bodies held in memory at once, by all requests together; "
        "a body that does not fit is answered 503 with Retry-After. At least "
        "SLUICE_INGEST_MAX_BODY_BYTES. Decoding multiplies a body up to ten times for a "
        "moment: 32 MiB suits a 512 MiB pod.",
    )
    ingest_unverified_body_bytes: int = Field(
        16 * MIB, ge=1024,
        description="Part of SLUICE_INGEST_BODY_BUDGET_BYTES for bodies read before their "
        "credentials are verified (a Segment `X-Signature` is a signature of the body; "
        "analytics.js sends its write key in the body); over it 503 with Retry-After. Anyone can "
        "send such a body, so it gets less than the whole budget.",
    )
    ingest_auth_failure_rate: float = Field(
        1.0, gt=0,
        description="Failed authentications (401, 403) per second a client address may make on "
        "average; past SLUICE_INGEST_AUTH_FAILURE_BURST its requests are answered 429 with "
        "Retry-After before anything is read, so guessing a secret is slow and a flood of "
        "unverified bodies stops at the door.",
    )
    ingest_auth_failure_burst: int = Field(
        20, ge=1,
        description="Failed authentications a client address may make at once before "
        "SLUICE_INGEST_AUTH_FAILURE_RATE applies.",
    )
    ingest_credential_rate: float = Field(
        500.0, gt=0,
        description="Requests per second one public credential (a browser write key) may send to "
        "one `sluice ingest` on average; over it 429 with Retry-After. A public key is shared by "
        "every visitor of a site: size it for the site's whole traffic per replica.",
    )
    ingest_credential_burst: int = Field(
        1000, ge=1,
        description="Requests one public credential may send at once before "
        "SLUICE_INGEST_CREDENTIAL_RATE applies.",
    )
    ingest_client_rate: float = Field(
        20.0, gt=0,
        description="Requests per second one client address may send with a public credential "
        "on average; over it 429 with Retry-After (a browser sends a few events per page).",
    )
    ingest_client_burst: int = Field(
        100, ge=1,
        description="Requests one client address may send at once with a public credential "
        "before SLUICE_INGEST_CLIENT_RATE applies.",
    )
    ingest_max_tracked_clients: int = Field(
        50_000, ge=100,
        description="Client addresses (and public credentials) whose rate limits are remembered "
        "at once, per limit (about 250 bytes each: 12 MiB at the default); past it the least "
        "recently seen is forgotten, so a flood of addresses cannot grow memory.",
    )
    ingest_transactional_id_prefix: str | None = Field(
        None,
        description="Prefix of the Kafka transactional ids of `sluice ingest` (default: "
        "`sluice-ingest-<host name>`). Each producer it starts gets an id of its own "
        "(`<prefix>-<start time>-<n>`), used for nothing else: a new one after every aborted "
        "transaction, so no two instances, and no two producers of one, fence each other.",
    )
    ingest_transaction_timeout: float = Field(
        15.0, gt=0,
        description="Seconds the broker lets a transaction of `sluice ingest` stay open before it "
        "aborts it. A worker (reading read_committed) waits behind an open transaction, so this "
        "bounds how long an instance killed mid-request holds a partition back (the local "
        "stack's broker never aborts one: see the README). Longer than "
        "SLUICE_INGEST_PRODUCE_TIMEOUT plus one second.",
    )
