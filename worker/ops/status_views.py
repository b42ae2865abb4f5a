"""What the status page shows, as plain records built from ``/metrics``' samples.

Two views: the worker's (partitions, lag, sinks, dead letters, S3, Elasticsearch, the
catalog) and `sluice ingest`'s (requests by form and status, the broker). Every number is a
sample of ``/metrics`` (``Cell.metric`` and ``Cell.labels`` name it) or the rate of one, so the
page and a scrape agree; the readiness reasons are those of ``/health/ready``. Nothing else
reaches the page: no setting, no credential, no event content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from worker.ops.samples import Labels, Rates, Samples

CellKind = Literal["value", "rate", "text"]


@dataclass(frozen=True)
class Cell:
    """One table cell: a text, a sample's value, or a counter's rate per second."""

    text: str
    kind: CellKind = "text"
    metric: str | None = None
    labels: Labels = ()
    value: float | None = None


@dataclass(frozen=True)
class Table:
    """A titled table; an empty one shows `empty` instead of its rows."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)
    empty: str = "none"
    note: str = ""


@dataclass(frozen=True)
class StatusView:
    """A whole page: the process, its readiness and its tables."""

    title: str
    ready: bool
    problems: dict[str, str]
    tables: list[Table]


# --- cells -----------------------------------------------------------------------------------


def value(samples: Samples, name: str, labels: Labels = (), unit: str = "") -> Cell:
    """A sample as /metrics shows it; "–" when /metrics does not have it."""
    number = samples.get(name, labels)
    if number is None:
        return Cell("–", "value", name, labels, None)
    return Cell(format_number(number, unit), "value", name, labels, number)


def rate(rates: Rates, name: str, labels: Labels = ()) -> Cell:
    """A counter's rate per second; "…" until the page has been rendered twice."""
    per_second = rates.of(name, labels)
    if per_second is None:
        return Cell("…", "rate", name, labels, None)
    return Cell(f"{format_number(per_second, '', decimals=1)}/s", "rate", name, labels,
                per_second)


def flag(samples: Samples, name: str, labels: Labels = (), yes: str = "yes",
         no: str = "no") -> Cell:
    """A 0/1 gauge as words."""
    number = samples.get(name, labels)
    if number is None:
        return Cell("–", "value", name, labels, None)
    return Cell(yes if number else no, "value", name, labels, number)


def format_number(number: float, unit: str = "", decimals: int = 0) -> str:
    """1234567 → "1,234,567"; seconds get one decimal below a minute and minutes above."""
    if unit == "s":
        if number >= 120:
            return f"{number / 60:,.1f} min"
        return f"{number:,.1f} s"
    if decimals == 0 and number != int(number):
        decimals = 2
    return f"{number:,.{decimals}f}" + (f" {unit}" if unit else "")


def _label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")


# --- the worker ------------------------------------------------------------------------------


def worker_view(samples: Samples, rates: Rates, problems: dict[str, str]) -> StatusView:
    """The worker's page."""
    tables = [_throughput(samples, rates), _partitions(samples), _dead_letters(samples, rates)]
    if samples.has("sluice_s3_open_parts"):
        tables.append(_s3(samples))
    if samples.has("sluice_elasticsearch_documents_held"):
        tables.append(_elasticsearch(samples))
    tables.append(_catalog(samples))
    return StatusView("Sluice worker", not problems, problems, tables)


def _throughput(samples: Samples, rates: Rates) -> Table:
    rows = [
        (Cell("records consumed"), value(samples, "sluice_records_consumed_total"),
         rate(rates, "sluice_records_consumed_total")),
        (Cell("events decoded"), value(samples, "sluice_events_total"),
         rate(rates, "sluice_events_total")),
    ]
    for labels in sorted(samples.series("sluice_events_delivered_total")):
        rows.append((Cell(f"delivered by {_label(labels, 'sink')}"),
                     value(samples, "sluice_events_delivered_total", labels),
                     rate(rates, "sluice_events_delivered_total", labels)))
    rows.append((Cell("records in flight (not yet acknowledged)"),
                 value(samples, "sluice_records_in_flight"), Cell("")))
    return Table("Events per sink", ("", "total", "per second"), rows)


def _partitions(samples: Samples) -> Table:
    owned = set(samples.series("sluice_partition_assigned"))
    # A partition just revoked may still show a lag or an age for one scrape: show it too.
    keys = owned | set(samples.series("sluice_consumer_lag")) | \
        set(samples.series("sluice_oldest_unsettled_seconds"))
    rows = []
    for labels in sorted(keys, key=lambda k: (_label(k, "topic"), int(_label(k, "partition")))):
        rows.append((
            Cell(_label(labels, "topic")),
            Cell(_label(labels, "partition"), "value", "sluice_partition_assigned", labels,
                 samples.get("sluice_partition_assigned", labels)) if labels in owned
            else Cell(f"{_label(labels, 'partition')} (revoked)"),
            value(samples, "sluice_consumer_lag", labels),
            _age(samples, labels),
        ))
    return Table(f"Partitions owned: {len(owned)}",
                 ("topic", "partition", "lag (records)", "oldest unsettled record"), rows,
                 empty="no source partition assigned")


def _age(samples: Samples, labels: Labels) -> Cell:
    cell = value(samples, "sluice_oldest_unsettled_seconds", labels, unit="s")
    if cell.value is None:
        # /metrics omits a partition with nothing in flight: everything consumed is settled.
        return Cell("all settled", "value", "sluice_oldest_unsettled_seconds", labels, None)
    return cell


def _dead_letters(samples: Samples, rates: Rates) -> Table:
    series = samples.series("sluice_dead_letters_total")
    rows = [(Cell(_label(labels, "stage")), Cell(_label(labels, "error_class")),
             value(samples, "sluice_dead_letters_total", labels),
             rate(rates, "sluice_dead_letters_total", labels))
            for labels in sorted(series)]
    tripped = samples.get("sluice_dead_letter_limit_tripped")
    note = ("The dead-letter limit has stopped consumption (see the reasons above)."
            if tripped else "")
    return Table("Dead letters by class", ("stage", "error class", "total", "per second"), rows,
                 empty="no dead letter", note=note)


def _s3(samples: Samples) -> Table:
    rows = [
        (Cell("parts open"), value(samples, "sluice_s3_open_parts")),
        (Cell("events in open parts"), value(samples, "sluice_s3_buffered_events")),
        (Cell("hour parts waiting for their merge"),
         value(samples, "sluice_s3_hour_parts_waiting")),
        (Cell("objects written"), value(samples, "sluice_s3_objects_written_total")),
        (Cell("objects merged"), value(samples, "sluice_s3_objects_merged_total")),
        (Cell("failed calls (retried)"), value(samples, "sluice_s3_request_failures_total")),
        (Cell("kinds of calls paused for a configuration fault"),
         value(samples, "sluice_s3_paused_calls")),
    ]
    return Table("S3", ("", "now"), rows)


def _elasticsearch(samples: Samples) -> Table:
    rows = [
        (Cell("documents held back (429, write block)"),
         value(samples, "sluice_elasticsearch_documents_held")),
        (Cell("longest held for"),
         value(samples, "sluice_elasticsearch_backpressure_seconds", unit="s")),
        (Cell("bulk requests in flight"),
         value(samples, "sluice_elasticsearch_requests_in_flight")),
        (Cell("documents indexed"), value(samples, "sluice_elasticsearch_documents_indexed_total")),
        (Cell("failed bulk requests (retried)"),
         value(samples, "sluice_elasticsearch_request_failures_total")),
    ]
    return Table("Elasticsearch", ("", "now"), rows)


def _catalog(samples: Samples) -> Table:
    rows = [
        (Cell("API keys"), value(samples, "sluice_catalog_keys")),
        (Cell("events whose key the catalog does not know"),
         value(samples, "sluice_events_unenriched_total")),
        (Cell("reader failures"), value(samples, "sluice_catalog_reader_failures_total")),
    ]
    return Table("Catalog", ("", "now"), rows)


# --- sluice ingest ---------------------------------------------------------------------------


def ingest_view(samples: Samples, rates: Rates, problems: dict[str, str]) -> StatusView:
    """`sluice ingest`'s page."""
    broker = Table("Broker", ("", "now"), [
        (Cell("available (a producer is connected)"),
         flag(samples, "sluice_ingest_broker_available")),
    ])
    requests = samples.series("sluice_ingest_requests_total")
    by_status = Table(
        "Requests by form and status", ("form", "status", "total", "per second"),
        [(Cell(_label(labels, "form")), Cell(_label(labels, "status")),
          value(samples, "sluice_ingest_requests_total", labels),
          rate(rates, "sluice_ingest_requests_total", labels))
         for labels in sorted(requests, key=lambda k: (_label(k, "form"), _label(k, "status")))],
        empty="no request yet")
    events = samples.series("sluice_ingest_events_total")
    produced = Table(
        "Records produced by form", ("form", "total", "per second"),
        [(Cell(_label(labels, "form")), value(samples, "sluice_ingest_events_total", labels),
          rate(rates, "sluice_ingest_events_total", labels)) for labels in sorted(events)],
        empty="none yet")
    return StatusView("Sluice ingest", not problems, problems, [broker, by_status, produced])
