"""Pipeline settings: sinks, in-flight bounds, batches, settlement, the consumer group's timing."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import NoDecode


class SinkName(StrEnum):
    """The sinks a worker can deliver to."""

    COUNTING = "counting"
    ELASTICSEARCH = "elasticsearch"
    S3 = "s3"
    ICEBERG = "iceberg"


class PipelineSettings(BaseModel):
    """How records move from the source topic through the sinks, and how the group behaves."""

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
    dedupe_window: float = Field(
        600.0,
        ge=0,
        description="Seconds (of the records' Kafka timestamps) a partition remembers the event "
        "ids it has seen: an event whose producer id (`messageId`, `requestId`, CloudWatch's "
        "log event id) came earlier within the window on the same partition is a retry, and is "
        "counted and left out of every sink. 0 switches it off. See the README's \"Retries "
        "and the archive\".",
    )
    dedupe_max_ids: int = Field(
        200_000,
        ge=1,
        description="Most ids one partition's window holds (the oldest are forgotten first): "
        "bounds its memory at about 77 bytes an id (15 MiB a partition by default; `python -m "
        "bench.dedupe`). 200,000 covers a 10-minute window up to 333 events/s a partition.",
    )
    document_headers: bool = Field(
        True,
        description="Keep the Kafka record's headers on each document, as the object "
        "`headers` (name → UTF-8 text, or `{\"base64\": …}` for other bytes; a repeated name "
        "→ a list), in every sink and format; Sluice's own `sluice.*` headers are left out. "
        "`false` leaves them all out.",
    )
    max_in_flight_records: int = Field(
        250_000,
        ge=1,
        description="Records consumed but not yet acknowledged by every sink; consumption "
        "pauses at this bound (backpressure).",
    )
    dead_letter_limit_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The worker stops consuming (and reports unready) once more than this "
        "share of the last SLUICE_DEAD_LETTER_LIMIT_WINDOW outcomes were dead letters: a broken "
        "producer or mapping, not noise (healthy traffic dead-letters well under 1%). Nothing "
        "from the record that trips it on is dead-lettered or committed; a restart resumes. "
        "0 switches the ratio limit off.",
    )
    dead_letter_limit_window: int = Field(
        1000,
        ge=1,
        description="Outcomes the ratio is taken over, at decode (events decoded or failed) and "
        "at the sinks (events delivered or refused) apart; judged only once that many were "
        "seen, so a short burst of bad records does not stop the worker.",
    )
    dead_letter_limit_consecutive: int = Field(
        0,
        ge=0,
        description="The worker also stops after more than this many dead letters in a row; "
        "0 (default) switches this limit off.",
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
        "answers and no sink holds the partition's events back on purpose (Elasticsearch "
        "backpressure), the worker rewinds the partition so it is consumed again from its "
        "oldest unsettled record (a stuck partition is recovered, never silently stalled).",
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
        description="Seconds between offset commits under load; when every record consumed "
        "has been acknowledged (the stream paused or ended), the worker commits at once. Only "
        "offsets every sink has acknowledged are ever committed.",
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

    @model_validator(mode="after")
    def _drain_fits_the_rebalance(self) -> Self:
        # A revoke drains (up to SLUICE_DRAIN_TIMEOUT) and, with SLUICE_COMMIT_ON_REBALANCE,
        # then commits (bounded by the same timeout): both must end before the group gives up.
        phases = 2 if self.commit_on_rebalance else 1
        if self.drain_timeout * phases >= self.rebalance_timeout:
            if phases == 2:
                raise ValueError(
                    f"with SLUICE_COMMIT_ON_REBALANCE=true a revoke drains and then commits, "
                    f"each up to SLUICE_DRAIN_TIMEOUT: 2 × {self.drain_timeout:g}s must be "
                    f"shorter than SLUICE_REBALANCE_TIMEOUT ({self.rebalance_timeout:g}s), or a "
                    "member that takes that long is expelled from the group; lower "
                    "SLUICE_DRAIN_TIMEOUT or raise SLUICE_REBALANCE_TIMEOUT"
                )
            raise ValueError(
                f"SLUICE_DRAIN_TIMEOUT ({self.drain_timeout:g}s) must be shorter than "
                f"SLUICE_REBALANCE_TIMEOUT ({self.rebalance_timeout:g}s): a member that drains "
                "longer is expelled from the group"
            )
        return self

    @model_validator(mode="after")
    def _settling_outlasts_the_drain(self) -> Self:
        if self.settle_timeout <= self.drain_timeout:
            raise ValueError(
                f"SLUICE_SETTLE_TIMEOUT ({self.settle_timeout:g}s) must be longer than "
                f"SLUICE_DRAIN_TIMEOUT ({self.drain_timeout:g}s)"
            )
        return self

    @model_validator(mode="after")
    def _heartbeats_fit_the_session(self) -> Self:
        if self.heartbeat_interval * 3 > self.session_timeout:
            raise ValueError(
                f"SLUICE_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g}s) must be at most a third "
                f"of SLUICE_SESSION_TIMEOUT ({self.session_timeout:g}s)"
            )
        return self
