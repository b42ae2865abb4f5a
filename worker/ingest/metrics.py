"""Prometheus metrics of `sluice ingest`, in a registry of its own (served on ``/metrics``)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry


class IngestMetrics:
    """Requests by path form and status, events produced, bytes read, request latency; the
    connections and what the limits refused or closed; transactions by outcome."""

    def __init__(self, broker_available: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("sluice_ingest_requests", "Requests answered, by form and status.",
                                ["form", "status"], registry=self.registry)
        self.events = Counter("sluice_ingest_events",
                              "Records produced and acknowledged by the broker, by form.",
                              ["form"], registry=self.registry)
        self.bytes = Counter("sluice_ingest_request_bytes",
                             "Request body bytes read (after gzip decoding), by form.",
                             ["form"], registry=self.registry)
        self.seconds = Histogram("sluice_ingest_request_seconds",
                                 "Time from a request's arrival to its answer, by form.", ["form"],
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        available = Gauge("sluice_ingest_broker_available",
                          "1 while a producer is connected to the broker, else 0.",
                          registry=self.registry)
        available.set_function(lambda: 1.0 if broker_available() else 0.0)
        self.connections = Gauge("sluice_ingest_connections", "Open client connections.",
                                 registry=self.registry)
        self.connections_closed = Counter(
            "sluice_ingest_connections_closed",
            "Connections closed by a limit, by reason: over_capacity (refused with 503), "
            "idle_evicted (an idle keep-alive connection made room), header_timeout (408), "
            "header_too_large (431).", ["reason"], registry=self.registry)
        self.body_bytes_held = Gauge(
            "sluice_ingest_body_bytes_held",
            "Bytes of request bodies held now, of the body budget: all, and unverified.",
            ["part"], registry=self.registry)
        self.transactions = Counter(
            "sluice_ingest_transactions",
            "Transactions of the producer, by outcome: committed, aborted, unconfirmed.",
            ["outcome"], registry=self.registry)

    def connection_closed(self, reason: str) -> None:
        """Count one connection closed (or refused) by a limit."""
        self.connections_closed.labels(reason).inc()

    def answered(self, form: str, status: int, events: int, body_bytes: int,
                 seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(form, str(status)).inc()
        if events:
            self.events.labels(form).inc(events)
        if body_bytes:
            self.bytes.labels(form).inc(body_bytes)
        self.seconds.labels(form).observe(seconds)
