"""Rate limits: token buckets per credential and per client address, answered 429 with
Retry-After.

A secret credential (a bearer token, a Firehose access key) needs no rate limit: whoever holds
it is trusted. A public one does: a browser write key is in every visitor's page, so anyone can
send with it. ``RateLimits.check(credential, client)`` is the one call a path with a public
credential makes, after the credential is known to exist and before the body is read:

    limits.check(write_key, client_address(request, proxies))  # raises TooManyRequests

``AuthFailures`` limits the other side: a client address that keeps failing authentication is
answered 429 before anything of its requests is read, so a secret cannot be guessed quickly
and a flood of unverified bodies stops at the door.

A bucket holds ``burst`` tokens and refills at ``rate`` per second; a request takes one. The
buckets of at most ``max_keys`` keys are remembered, least recently used forgotten first: a
forgotten bucket is a full one, so a flood of new addresses costs bounded memory and gains each
address no more than its first burst. The limits are per process: N replicas allow N times the
rate.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from worker.config import Settings
from worker.ingest.errors import TooManyRequests

Clock = Callable[[], float]


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class TokenBuckets:
    """One token bucket per key: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, max_keys: int,
                 clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token (0.0: it has one now); takes nothing."""
        tokens = self._refilled(key).tokens
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str) -> None:
        """Take a token from `key`'s bucket (an empty bucket stays empty)."""
        bucket = self._refilled(key)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header for a wait of `seconds` (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class RateLimits:
    """Requests per public credential and per client address (SLUICE_INGEST_CREDENTIAL_RATE,
    SLUICE_INGEST_CLIENT_RATE and their bursts)."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        keys = settings.ingest_max_tracked_clients
        self.per_credential = TokenBuckets(settings.ingest_credential_rate,
                                           settings.ingest_credential_burst, keys, clock)
        self.per_client = TokenBuckets(settings.ingest_client_rate,
                                       settings.ingest_client_burst, keys, clock)

    def check(self, credential: str, client: str | None) -> None:
        """Count one request of `credential` from `client`; raise TooManyRequests (429 with
        Retry-After) when either is over its limit, and then count nothing."""
        waits = [("this credential", self.per_credential.wait(credential))]
        if client is not None:
            waits.append(("this client address", self.per_client.wait(client)))
        who, longest = max(waits, key=lambda item: item[1])
        if longest > 0:
            raise TooManyRequests(f"too many requests from {who}; retry later",
                                  retry_after(longest))
        self.per_credential.take(credential)
        if client is not None:
            self.per_client.take(client)


class AuthFailures:
    """Failed authentications per client address (SLUICE_INGEST_AUTH_FAILURE_RATE / _BURST)."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self.buckets = TokenBuckets(settings.ingest_auth_failure_rate,
                                    settings.ingest_auth_failure_burst,
                                    settings.ingest_max_tracked_clients, clock)

    def check(self, client: str | None) -> None:
        """Raise TooManyRequests while `client` has used up its failed authentications."""
        if client is None:
            return
        wait = self.buckets.wait(client)
        if wait > 0:
            raise TooManyRequests("too many failed authentications from this client address; "
                                  "retry later", retry_after(wait))

    def failed(self, client: str | None) -> None:
        """Count one failed authentication of `client`."""
        if client is not None:
            self.buckets.take(client)
