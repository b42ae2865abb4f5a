"""The archive's objects as bytes: from the bucket, one GET each, many at a time; or from a
local copy of it (a directory holding the objects under their keys).

Why not DuckDB's ``httpfs``: a month is thousands of small objects (2,400 of 20 KB), so the
cost is per request, not per byte, in the report and in the S3 server alike. httpfs asks twice
per object (HEAD, then GET; Parquet three times: HEAD, footer, data). Measured fetching the
benchmark's month (``bench/report_month.py``) from the local S3 server, CPU of the report's
process / of the server: httpfs 1.4-4.5 s / 2.9-3.6 s (1.2-3.5 s / 1.9-2.4 s with one GET an
object, ``force_download``); aiobotocore's ``get_object`` 2.8-3.4 s / 1.8-2.6 s; here
0.9-1.2 s / 1.2-1.4 s. Each object is one GET of a URL presigned by botocore (SigV4, the
worker's endpoint, addressing style and credentials, the AWS chain included) over a pool of
kept-alive aiohttp connections. Presigning is 0.5 s of it (botocore builds a request per URL);
a URL is signed just before its GET, so it cannot expire however long the range takes.

A refused or reset connection, a 5xx or a 429 (a busy server) is retried with backoff, as
botocore's standard mode would; any other answer stops the report with an ``ArchiveError``
naming the settings to check. TLS is verified against SLUICE_S3_CA_BUNDLE, or the system's CAs;
HTTP(S)_PROXY and NO_PROXY apply as they do to botocore.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yarl

from worker.config import Settings
from worker.report.archive import ArchiveError, ArchiveObject
from worker.sinks.s3.client import make_client_context

# GETs in flight at once. The objects are small: requests, not bandwidth, set the pace (the
# month's 2,400 from the local server: 4 at once 2.5-3.3 s, 16 or 32 1.9-2.8 s, the same CPU).
CONCURRENCY = 16
ATTEMPTS = 8
FIRST_BACKOFF = 0.2    # seconds, doubled after each failed attempt
TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ObjectSource(Protocol):
    """Where the objects' bytes come from."""

    async def read(self, item: ArchiveObject) -> bytes:
        """The object's bytes as stored."""


class LocalCopy:
    """Objects under their keys in a directory."""

    def __init__(self, root: Path) -> None:
        self._root = root

    async def read(self, item: ArchiveObject) -> bytes:
        return (self._root / item.key).read_bytes()


class _Transient(Exception):
    """An answer worth asking again for."""


class BucketObjects:
    """Objects of SLUICE_S3_BUCKET, each fetched with one GET of a presigned URL."""

    def __init__(self, settings: Settings, client: Any, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._client = client
        self._session = session
        self._proxies: dict[str, str | None] = {}

    async def read(self, item: ArchiveObject) -> bytes:
        delay = FIRST_BACKOFF
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._get(item)
            except (_Transient, aiohttp.ClientError, TimeoutError) as error:
                # A connection refused or reset, an answer cut short, a busy server.
                if attempt == ATTEMPTS:
                    raise ArchiveError(
                        f"cannot read s3://{self._settings.s3_bucket}/{item.key} after "
                        f"{ATTEMPTS} attempts: {error or type(error).__name__}; check "
                        "SLUICE_S3_ENDPOINT_URL (SLUICE_S3_CA_BUNDLE for its TLS "
                        "certificate) and that the S3 server is up") from error
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _get(self, item: ArchiveObject) -> bytes:
        url = await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._settings.s3_bucket, "Key": item.key})
        # botocore quoted the key as it signed it: sent as it is, not re-quoted.
        target = yarl.URL(url, encoded=True)
        async with self._session.get(target, proxy=self._proxy(target)) as answer:
            if answer.status in _RETRIED_STATUSES:
                raise _Transient(f"HTTP {answer.status}")
            if answer.status != 200:
                text = (await answer.text(errors="replace"))[:300]
                raise ArchiveError(
                    f"cannot read s3://{self._settings.s3_bucket}/{item.key}: HTTP "
                    f"{answer.status} {text}; check SLUICE_S3_BUCKET, SLUICE_S3_ENDPOINT_URL, "
                    "SLUICE_S3_REGION and the credentials (SLUICE_AWS_ACCESS_KEY_ID / "
                    "SLUICE_AWS_SECRET_ACCESS_KEY or the AWS chain)")
            return await answer.read()

    def _proxy(self, url: yarl.URL) -> str | None:
        """The proxy botocore would use for the URL's host (HTTP(S)_PROXY, NO_PROXY), looked up
        once per host: aiohttp's own lookup (trust_env) reads the environment for every
        request, about 1 s of CPU for a month's objects."""
        host = url.host or ""
        if host not in self._proxies:
            bypass = bool(urllib.request.proxy_bypass(host))
            self._proxies[host] = None if bypass else urllib.request.getproxies().get(url.scheme)
        return self._proxies[host]


def _tls(settings: Settings) -> ssl.SSLContext | bool:
    if settings.s3_ca_bundle:
        return ssl.create_default_context(cafile=str(settings.s3_ca_bundle))
    return True


@asynccontextmanager
async def bucket_objects(settings: Settings) -> AsyncIterator[BucketObjects]:
    """The bucket as an ``ObjectSource``: a presigning client and a connection pool."""
    from botocore.exceptions import BotoCoreError

    connector = aiohttp.TCPConnector(limit=CONCURRENCY, ssl=_tls(settings))
    try:
        # SigV4: botocore presigns S3 URLs with the old SigV2 unless told, which regions
        # opened since 2014 refuse.
        async with make_client_context(settings, signature_version="s3v4") as client, \
                aiohttp.ClientSession(connector=connector, timeout=TIMEOUT,
                                      auto_decompress=False) as session:
            yield BucketObjects(settings, client, session)
    except BotoCoreError as error:
        raise ArchiveError(f"cannot sign requests for s3://{settings.s3_bucket}: {error}; check "
                           "the credentials (SLUICE_AWS_ACCESS_KEY_ID / "
                           "SLUICE_AWS_SECRET_ACCESS_KEY or the AWS chain)") from error
