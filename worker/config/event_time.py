"""Event-time settings: how far an event's own times may be from when Kafka received it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EventTimeSettings(BaseModel):
    """The accepted window of event times (see ``worker.events.event_time``)."""

    event_time_max_past: float = Field(
        30 * 86400.0, gt=0,
        description="Seconds an event's `timestamp` (or client-supplied `receivedAt`) may lie "
        "before its Kafka record's timestamp and still choose the event's S3 hour and "
        "Elasticsearch index; older events are filed by the record's timestamp instead (the "
        "document keeps its own times). Default 30 days: offline mobile queues and late "
        "batch uploads.",
    )
    event_time_max_future: float = Field(
        86400.0, gt=0,
        description="Seconds an event time may lie after its Kafka record's timestamp (clock "
        "skew, a local time sent as UTC: up to 14 hours) before the record's timestamp files "
        "it instead.",
    )
