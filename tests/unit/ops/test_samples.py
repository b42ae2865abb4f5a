from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

from worker.ops.samples import RateTracker, labels_of, read_samples


def _registry() -> tuple[CollectorRegistry, Counter, Gauge]:
    registry = CollectorRegistry()
    delivered = Counter("sluice_events_delivered", "d", ["sink"], registry=registry)
    lag = Gauge("sluice_consumer_lag", "l", ["topic", "partition"], registry=registry)
    return registry, delivered, lag


def test_samples_carry_the_names_and_labels_of_the_exposition() -> None:
    registry, delivered, lag = _registry()
    delivered.labels("s3").inc(7)
    lag.labels("events", "3").set(12)
    samples = read_samples(registry)
    assert samples.get("sluice_events_delivered_total", labels_of(sink="s3")) == 7
    assert samples.get("sluice_consumer_lag", labels_of(topic="events", partition="3")) == 12
    assert samples.get("sluice_events_delivered_total", labels_of(sink="elasticsearch")) is None


def test_a_family_without_samples_is_still_known() -> None:
    registry, _, _ = _registry()
    samples = read_samples(registry)
    assert samples.has("sluice_events_delivered_total")
    assert samples.series("sluice_events_delivered_total") == {}


def test_a_rate_needs_an_earlier_render_and_is_the_change_per_second() -> None:
    registry, delivered, _ = _registry()
    tracker = RateTracker(window=15)
    key = labels_of(sink="s3")
    delivered.labels("s3").inc(100)
    first = tracker.observe(read_samples(registry), now=1000.0)
    assert first.of("sluice_events_delivered_total", key) is None
    delivered.labels("s3").inc(50)
    second = tracker.observe(read_samples(registry), now=1005.0)
    assert second.of("sluice_events_delivered_total", key) == 10.0


def test_renders_closer_than_a_second_give_no_rate() -> None:
    registry, delivered, _ = _registry()
    tracker = RateTracker(window=15)
    tracker.observe(read_samples(registry), now=1000.0)
    delivered.labels("s3").inc(5)
    rates = tracker.observe(read_samples(registry), now=1000.2)
    assert rates.of("sluice_events_delivered_total", labels_of(sink="s3")) is None


def test_a_rate_looks_back_at_most_the_window() -> None:
    registry, delivered, _ = _registry()
    tracker = RateTracker(window=15)
    key = labels_of(sink="s3")
    tracker.observe(read_samples(registry), now=1000.0)        # 0 events, too old by the end
    delivered.labels("s3").inc(1000)
    tracker.observe(read_samples(registry), now=1010.0)        # 1000 events
    delivered.labels("s3").inc(60)
    rates = tracker.observe(read_samples(registry), now=1020.0)  # 1060 events
    assert rates.of("sluice_events_delivered_total", key) == 6.0


def test_a_series_that_appeared_since_the_baseline_counts_from_zero() -> None:
    registry, delivered, _ = _registry()
    tracker = RateTracker(window=15)
    tracker.observe(read_samples(registry), now=1000.0)
    delivered.labels("elasticsearch").inc(20)
    rates = tracker.observe(read_samples(registry), now=1010.0)
    assert rates.of("sluice_events_delivered_total", labels_of(sink="elasticsearch")) == 2.0
