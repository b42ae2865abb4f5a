"""Token buckets per credential and per client address, and the failed-authentication limit."""

import pytest

from worker.config import load_settings
from worker.ingest.errors import TooManyRequests
from worker.ingest.rate_limits import AuthFailures, RateLimits, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=10, clock=clock)
    for _ in range(3):
        assert buckets.wait("a") == 0.0
        buckets.take("a")
    assert buckets.wait("a") == pytest.approx(0.5)  # one token every half second
    clock.now += 0.5
    assert buckets.wait("a") == 0.0
    assert buckets.wait("b") == 0.0  # another key has its own bucket


def test_a_bucket_never_saves_more_than_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10.0, burst=2, max_keys=10, clock=clock)
    clock.now += 3600
    for _ in range(2):
        buckets.take("a")
    assert buckets.wait("a") > 0


def test_the_least_recently_seen_keys_are_forgotten_past_the_bound() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=3, clock=Clock())
    for key in "abcd":
        buckets.take(key)
    assert len(buckets) == 3
    assert buckets.wait("a") == 0.0  # forgotten: a full bucket again


def _limits(clock: Clock, **overrides: object) -> RateLimits:
    values = {"ingest_credential_rate": 1.0, "ingest_credential_burst": 5,
              "ingest_client_rate": 1.0, "ingest_client_burst": 2}
    return RateLimits(load_settings(**{**values, **overrides}), clock)


def test_a_client_over_its_limit_gets_429_with_retry_after_and_others_go_on() -> None:
    clock = Clock()
    limits = _limits(clock)
    limits.check("write-key", "192.0.2.1")
    limits.check("write-key", "192.0.2.1")
    with pytest.raises(TooManyRequests) as refused:
        limits.check("write-key", "192.0.2.1")
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
    assert "client address" in refused.value.reason
    limits.check("write-key", "192.0.2.2")  # another visitor of the same site


def test_a_credential_over_its_limit_gets_429_whatever_the_address() -> None:
    limits = _limits(Clock(), ingest_credential_burst=3)
    for n in range(3):
        limits.check("write-key", f"192.0.2.{n}")
    with pytest.raises(TooManyRequests) as refused:
        limits.check("write-key", "192.0.2.99")
    assert "credential" in refused.value.reason


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    limits = _limits(clock, ingest_credential_burst=3, ingest_client_burst=1)
    limits.check("write-key", "192.0.2.1")
    for _ in range(5):
        with pytest.raises(TooManyRequests):
            limits.check("write-key", "192.0.2.1")
    # The refusals spent none of the credential's tokens: two are left.
    limits.check("write-key", "192.0.2.2")
    limits.check("write-key", "192.0.2.3")


def test_retry_after_is_the_wait_rounded_up_to_whole_seconds() -> None:
    limits = _limits(Clock(), ingest_client_rate=0.25, ingest_client_burst=1)
    limits.check("k", "192.0.2.1")
    with pytest.raises(TooManyRequests) as refused:
        limits.check("k", "192.0.2.1")
    assert refused.value.headers == {"Retry-After": "4"}


def test_failed_authentications_past_the_burst_get_429_until_the_rate_refills() -> None:
    clock = Clock()
    failures = AuthFailures(load_settings(ingest_auth_failure_rate=0.5,
                                          ingest_auth_failure_burst=2), clock)
    failures.check("192.0.2.1")
    failures.failed("192.0.2.1")
    failures.failed("192.0.2.1")
    with pytest.raises(TooManyRequests) as refused:
        failures.check("192.0.2.1")
    assert refused.value.headers == {"Retry-After": "2"}
    failures.check("192.0.2.2")
    failures.check(None)  # no address (a Unix socket): nothing to count against
    clock.now += 2
    failures.check("192.0.2.1")
