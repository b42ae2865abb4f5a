"""The panels of the Kibana dashboard: seed 003's API usage and seed 000's behaviour.

Plain records, independent of Kibana's format (``worker.kibana.saved_objects`` turns them into
Lens panels): a panel counts (or measures) the documents a KQL filter selects, bucketed along
``x`` and optionally split by ``breakdown``. Field names are those of the Elasticsearch
documents (``deploy/elasticsearch/index-template.json``).

These are the same panels as `sluice report`'s (issue 29); the two lists are kept apart for now
and are meant to become one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Operation = Literal["count", "unique_count", "median", "percentile"]
BucketKind = Literal["date_histogram", "terms", "filters"]
Chart = Literal["bar_stacked", "line", "bar_horizontal", "bar_horizontal_percentage", "table"]


@dataclass(frozen=True)
class Metric:
    """What is measured in each bucket."""

    operation: Operation = "count"
    field: str | None = None
    label: str = "Events"
    percentile: int | None = None


@dataclass(frozen=True)
class Buckets:
    """How documents are grouped: by time, by a field's top values, or by KQL filters."""

    kind: BucketKind
    field: str | None = None
    label: str = ""
    size: int = 10
    interval: str = "auto"
    filters: tuple[tuple[str, str], ...] = ()  # (label, KQL)


@dataclass(frozen=True)
class Panel:
    """One chart or table of the dashboard."""

    key: str  # stable: the saved objects' ids derive from it, so a new import overwrites
    seed: Literal["000", "003"]
    title: str
    chart: Chart
    filter: str  # KQL
    metrics: tuple[Metric, ...]
    x: Buckets
    breakdown: Buckets | None = None


OVER_TIME = Buckets("date_histogram", label="Time")
ACCESS_LOGS = 'type : "access_log"'
SEGMENT_EVENTS = 'not type : "access_log"'
COUNT = (Metric(),)
STATUS_CLASSES = Buckets("filters", label="Status class", filters=(
    ("2xx", "status >= 200 and status < 300"), ("3xx", "status >= 300 and status < 400"),
    ("4xx", "status >= 400 and status < 500"), ("5xx", "status >= 500")))

API_USAGE = (
    Panel("api-calls-by-plan", "003", "API calls over time by usage plan", "bar_stacked",
          ACCESS_LOGS, (Metric(label="Calls"),), OVER_TIME,
          Buckets("terms", "usage_plan_name", "Usage plan")),
    Panel("api-calls-by-customer", "003", "API calls over time by customer", "bar_stacked",
          ACCESS_LOGS, (Metric(label="Calls"),), OVER_TIME,
          Buckets("terms", "customer_name", "Customer")),
    Panel("top-customers", "003", "Top customers", "bar_horizontal", ACCESS_LOGS,
          (Metric(label="Calls"),), Buckets("terms", "customer_name", "Customer", size=15)),
    Panel("top-endpoints", "003", "Top endpoints", "table", ACCESS_LOGS,
          (Metric(label="Calls"),), Buckets("terms", "resource_path", "Resource path", size=20),
          Buckets("terms", "http_method", "Method", size=8)),
    Panel("status-classes", "003", "Status classes over time", "bar_stacked", ACCESS_LOGS,
          (Metric(label="Calls"),), OVER_TIME, STATUS_CLASSES),
    Panel("error-share-by-customer", "003", "Error rate by customer (share of 4xx and 5xx)",
          "bar_horizontal_percentage", ACCESS_LOGS, (Metric(label="Calls"),),
          Buckets("terms", "customer_name", "Customer", size=15),
          Buckets("filters", label="Answer", filters=(("errors (4xx, 5xx)", "status >= 400"),
                                                      ("success", "status < 400")))),
    Panel("unknown-api-keys", "003", "API keys not in the catalog", "table",
          f"{ACCESS_LOGS} and enriched : false", (Metric(label="Calls"),),
          Buckets("terms", "api_key_id", "API key id", size=20)),
    Panel("response-sizes", "003", "Response sizes (median and 95th percentile)", "line",
          ACCESS_LOGS, (Metric("median", "response_length", "Median bytes"),
                        Metric("percentile", "response_length", "95th percentile bytes", 95)),
          OVER_TIME),
)

BEHAVIOUR = (
    Panel("events-by-type", "000", "Events over time by type", "bar_stacked", SEGMENT_EVENTS,
          COUNT, OVER_TIME, Buckets("terms", "type", "Type")),
    Panel("top-events", "000", "Top events", "bar_horizontal", 'type : "track"', COUNT,
          Buckets("terms", "event", "Event", size=15)),
    Panel("daily-active-users", "000", "Daily active users", "line", SEGMENT_EVENTS,
          (Metric("unique_count", "user_id", "Users"),),
          Buckets("date_histogram", label="Day", interval="1d")),
    Panel("top-pages", "000", "Top pages", "bar_horizontal", 'type : "page"', COUNT,
          Buckets("terms", "name", "Page", size=15)),
    Panel("sources", "000", "Events by source", "bar_horizontal", SEGMENT_EVENTS, COUNT,
          Buckets("terms", "source_id", "Source", size=15)),
)

PANELS = API_USAGE + BEHAVIOUR
