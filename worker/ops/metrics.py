"""Prometheus metrics, read from the worker's own counters at scrape time.

Nothing is counted twice: the pipeline, the sinks and the catalog keep plain counters (cheap on
the hot path), and this collector turns them into Prometheus families when ``/metrics`` is
scraped. Every family is listed in the README's operations section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from worker.catalog.table import CatalogTable
from worker.pipeline.wiring import Pipeline
from worker.sinks.elasticsearch.sink import ElasticsearchSink
from worker.sinks.s3.sink import S3Sink

LagReader = Callable[[], dict[tuple[str, int], int]]


@dataclass(eq=False)  # the registry keys collectors by identity
class SluiceCollector(Collector):
    """Collects the metrics of one worker."""

    pipeline: Pipeline
    catalog: CatalogTable
    lag: LagReader

    def collect(self) -> Iterator[Metric]:
        counts = self.pipeline.progress.counts
        yield _counter("sluice_records_consumed", "Source records consumed.", counts["records"])
        yield _counter("sluice_events", "Events decoded from source records.", counts["events"])
        yield _counter("sluice_events_unenriched",
                       "Events whose API key the catalog does not know.", counts["unenriched"])
        yield _counter("sluice_events_duplicate",
                       "Events left out of every sink as a retry's copy (an id seen earlier on "
                       "the partition within SLUICE_DEDUPE_WINDOW).", counts["duplicates"])
        yield _gauge("sluice_dedupe_ids", "Event ids the retry windows hold, over all partitions.",
                     self.pipeline.dedupe.ids_held())
        delivered = CounterMetricFamily("sluice_events_delivered",
                                        "Events durably written, per sink.", labels=["sink"])
        for sink in self.pipeline.sinks:
            delivered.add_metric([sink.name], counts[f"delivered.{sink.name}"])
        yield delivered
        dead = CounterMetricFamily("sluice_dead_letters",
                                   "Records or events dead-lettered, by stage and error class.",
                                   labels=["stage", "error_class"])
        for (stage, error_class), count in sorted(self.pipeline.dead_letter_counts.items()):
            dead.add_metric([stage, error_class], count)
        yield dead
        yield _gauge("sluice_dead_letter_limit_tripped",
                     "1 once the dead-letter limit stopped consumption (see /health/ready).",
                     1 if self.pipeline.dead_letter_limit.tripped else 0)
        yield _gauge("sluice_records_in_flight",
                     "Records consumed and not yet acknowledged by every sink.",
                     self.pipeline.acks.in_flight)
        oldest = GaugeMetricFamily(
            "sluice_oldest_unsettled_seconds",
            "How long the oldest unacknowledged record of each assigned partition has waited "
            "for its sinks (readiness fails past SLUICE_SETTLE_TIMEOUT).",
            labels=["topic", "partition"])
        for (topic, partition), age in sorted(self.pipeline.acks.oldest_unsettled().items()):
            oldest.add_metric([topic, str(partition)], age)
        yield oldest
        yield _counter("sluice_duplicate_settlements",
                       "Outcomes reported twice for the same (event, sink) and ignored: nonzero "
                       "means a sink bug.", self.pipeline.acks.duplicate_settlements)
        yield _counter("sluice_partition_recoveries",
                       "Partitions consumed again because their records could not settle.",
                       self.pipeline.recoveries)
        yield _counter("sluice_group_rejoins",
                       "Times the worker rejoined its group because another worker held a "
                       "partition the group had assigned to it.", self.pipeline.regroups)
        yield _gauge("sluice_catalog_keys", "API keys in the catalog.", len(self.catalog))
        yield _counter("sluice_catalog_invalid_records",
                       "Catalog records that were not valid entries.", self.catalog.invalid_records)
        yield _counter("sluice_catalog_reader_failures",
                       "Times the catalog reader died and was restarted.",
                       self.catalog.reader_failures)
        assigned = GaugeMetricFamily("sluice_partition_assigned",
                                     "1 for each source partition this worker owns.",
                                     labels=["topic", "partition"])
        for topic, partition in self.pipeline.acks.assigned():
            assigned.add_metric([topic, str(partition)], 1)
        yield assigned
        lag = GaugeMetricFamily("sluice_consumer_lag",
                                "Records of an assigned partition not yet committed.",
                                labels=["topic", "partition"])
        for (topic, partition), value in sorted(self.lag().items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag
        for sink in self.pipeline.sinks:
            if isinstance(sink, ElasticsearchSink):
                yield from _elasticsearch(sink)
            elif isinstance(sink, S3Sink):
                yield from _s3(sink)


def _elasticsearch(sink: ElasticsearchSink) -> Iterator[Metric]:
    stats = sink.stats
    yield _counter("sluice_elasticsearch_documents_indexed", "Documents indexed.", stats.indexed)
    yield _counter("sluice_elasticsearch_documents_retried",
                   "Documents retried alone after a 429/5xx answer.", stats.retried)
    yield _counter("sluice_elasticsearch_documents_dead_lettered",
                   "Documents dead-lettered by the Elasticsearch sink.", stats.dead_lettered)
    yield _counter("sluice_elasticsearch_request_failures",
                   "Bulk requests that failed as a whole (and were retried).",
                   stats.request_failures)
    bulk = SummaryMetricFamily("sluice_elasticsearch_bulk_seconds",
                               "Duration of successful bulk requests.")
    bulk.add_metric([], stats.bulk_requests, stats.bulk_seconds)
    yield bulk
    yield _gauge("sluice_elasticsearch_requests_in_flight", "Bulk requests in flight.",
                 stats.in_flight_requests)
    yield _gauge("sluice_elasticsearch_documents_held",
                 "Documents Elasticsearch refused with 429 or a write block, held for a retry.",
                 sink.backpressure.held)
    yield _gauge("sluice_elasticsearch_backpressure_seconds",
                 "How long the longest-held of those documents has waited.",
                 sink.backpressure.seconds())


def _s3(sink: S3Sink) -> Iterator[Metric]:
    stats = sink.stats
    yield _counter("sluice_s3_objects_written", "Objects (parts) written.", stats.objects_written)
    yield _counter("sluice_s3_bytes_written", "Compressed bytes written.", stats.bytes_written)
    yield _counter("sluice_s3_events_written", "Events written.", stats.events_written)
    yield _counter("sluice_s3_events_skipped",
                   "Events of records S3 already held (replays), not written again.",
                   stats.events_skipped_already_written)
    yield _counter("sluice_s3_events_dead_lettered", "Events S3 rejected.", stats.dead_lettered)
    yield _counter("sluice_s3_request_failures", "S3 calls that failed (and were retried).",
                   stats.request_failures)
    upload = SummaryMetricFamily("sluice_s3_upload_seconds", "Duration of part uploads.")
    upload.add_metric([], stats.objects_written, stats.upload_seconds)
    yield upload
    yield _gauge("sluice_s3_open_parts", "Parts being filled.", sink.open_parts)
    yield _gauge("sluice_s3_buffered_events", "Events in open parts.", sink.buffered_events)
    yield _counter("sluice_s3_objects_merged", "Objects written by hourly merges.",
                   sink.merges.objects_merged if sink.merges else 0)
    yield _counter("sluice_s3_hour_parts_merged", "Hour parts merged (and removed).",
                   sink.merges.parts_merged if sink.merges else 0)
    yield _gauge("sluice_s3_hour_parts_waiting", "Hour parts of owned partitions not merged yet.",
                 sink.hour_parts_waiting)
    parked = GaugeMetricFamily(
        "sluice_s3_merges_parked",
        "Hourly merges that could not be built, parked with their parts (1 per object each "
        "would write; cause: corrupt_part, missing_part or schema_mismatch): alert on it.",
        labels=["topic", "partition", "object_key", "cause"])
    for (topic, partition), entry in sink.parked_merges:
        for output in entry.plan.outputs:
            parked.add_metric([topic, str(partition), output.key, entry.cause], 1)
    yield parked
    yield _gauge("sluice_s3_paused_calls", "Kinds of S3 calls retrying a refusal that needs a "
                 "configuration change (above 0: the sink is paused).", sink.paused_calls)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
