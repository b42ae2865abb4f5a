"""The report's GETs against a stand-in S3 server on loopback: what is asked, and how often."""

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from worker.config import load_settings
from worker.report import fetch
from worker.report.archive import ArchiveError, ArchiveObject
from worker.report.fetch import bucket_objects

KEY = "logs/year=2026/month=11/day=22/hour=10/events+0+000000000000+000000000009.ndjson.gz"
BODY = b"\x1f\x8b stored bytes, as they are"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _read_through(handler: Handler, endpoint: str | None = None,
                        monkeypatch: pytest.MonkeyPatch | None = None) -> bytes:
    """The object read from a server answering with `handler`: the S3 endpoint, or, with an
    `endpoint` of its own, the HTTP proxy in front of it (HTTP_PROXY)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    if endpoint and monkeypatch:
        monkeypatch.setenv("HTTP_PROXY", f"http://{host}:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
    settings = load_settings(s3_endpoint_url=endpoint or f"http://{host}:{port}",
                             s3_bucket="archive", aws_access_key_id="key-id",
                             aws_secret_access_key="secret")
    try:
        async with bucket_objects(settings) as objects:
            return await objects.read(ArchiveObject(KEY, len(BODY)))
    finally:
        await runner.cleanup()


async def test_an_object_is_one_sigv4_get_asked_again_while_the_server_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetch, "FIRST_BACKOFF", 0.01)
    seen: list[web.Request] = []

    async def busy_twice_then_dropped_once(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if len(seen) <= 2:
            return web.Response(status=503, text="<Error><Code>SlowDown</Code></Error>")
        if len(seen) == 3:
            assert request.transport is not None
            request.transport.close()  # no answer at all
        return web.Response(body=BODY, headers={"Content-Encoding": "gzip"})

    assert await _read_through(busy_twice_then_dropped_once) == BODY
    assert [request.method for request in seen] == ["GET"] * 4
    last = seen[-1]
    # The key as stored (the quoted path decodes to it), signed with SigV4 in the query.
    assert last.path == f"/archive/{KEY}"
    assert last.query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert last.query["X-Amz-Credential"].startswith("key-id/")


async def test_a_refusal_stops_the_report_naming_what_to_check() -> None:
    seen: list[str] = []

    async def forbidden(request: web.Request) -> web.StreamResponse:
        seen.append(request.method)
        return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")

    with pytest.raises(ArchiveError) as raised:
        await _read_through(forbidden)
    assert seen == ["GET"]
    message = str(raised.value)
    assert f"s3://archive/{KEY}: HTTP 403" in message and "AccessDenied" in message
    assert "SLUICE_AWS_ACCESS_KEY_ID" in message and "SLUICE_S3_ENDPOINT_URL" in message


async def test_a_server_that_stays_busy_is_given_up_on_with_the_attempts_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetch, "FIRST_BACKOFF", 0.001)
    seen: list[str] = []

    async def always_busy(request: web.Request) -> web.StreamResponse:
        seen.append(request.method)
        return web.Response(status=503)

    with pytest.raises(ArchiveError, match=f"after {fetch.ATTEMPTS} attempts: HTTP 503"):
        await _read_through(always_busy)
    assert len(seen) == fetch.ATTEMPTS


async def test_the_proxy_of_the_environment_is_used_as_botocore_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    async def proxy(request: web.Request) -> web.StreamResponse:
        asked.append(str(request.url))
        return web.Response(body=BODY)

    endpoint = "http://s3.archive.invalid:9000"
    assert await _read_through(proxy, endpoint, monkeypatch) == BODY
    assert len(asked) == 1 and asked[0].startswith(f"{endpoint}/archive/logs/")
