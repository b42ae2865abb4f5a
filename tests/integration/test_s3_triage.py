"""S3 configuration faults pause the sink and report it unready; nothing is dead-lettered.

The fault proxy in front of the real S3 server answers object uploads as S3 answers a storage
class the bucket does not offer (``InvalidStorageClass``, 400). Before the triage, any such 4xx
dead-lettered the events: the whole archive would have gone to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.integration.test_s3_ownership import _until
from tests.integration.test_s3_sink import _event, _objects
from tests.support.fault_proxy import FaultProxy
from worker.config import Settings
from worker.sinks.s3.sink import S3Sink, S3StartupError, preflight

pytestmark = pytest.mark.integration


class _Outcomes:
    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.failed_: list[Any] = []

    def delivered_(self, sink: str, events: Any) -> None:
        self.delivered.extend(e.event_id for e in events)

    async def failed(self, sink: str, failures: Any) -> None:
        self.failed_.extend(failures)

    def lost(self, sink: str, partition: Any, reason: str) -> None:
        raise AssertionError(f"partition lost: {reason}")


@contextlib.asynccontextmanager
async def _sink_behind_proxy(s3_settings: Settings,
                             listener: Any) -> AsyncIterator[tuple[S3Sink, FaultProxy]]:
    """A started S3 sink owning partition 0, its S3 calls through a fault proxy."""
    await preflight(s3_settings)
    proxy = FaultProxy(s3_settings.s3_endpoint_url or "", signed=True).start()
    sink = S3Sink(listener, s3_settings.model_copy(update={
        "s3_endpoint_url": proxy.url, "s3_retry_initial": 0.05, "s3_retry_max": 0.2}))
    try:
        await sink.start()
        sink.assign([(s3_settings.source_topic, 0)])
        await sink.flush()
        yield sink, proxy
    finally:
        await sink.stop()
        proxy.stop()


async def test_a_refused_storage_class_pauses_reports_unready_and_loses_nothing(
    s3_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = _Outcomes()
    listener = type("Listener", (), {"delivered": lambda self, s, e: outcomes.delivered_(s, e),
                                     "failed": lambda self, s, f: outcomes.failed(s, f),
                                     "lost": lambda self, s, p, r: outcomes.lost(s, p, r),
                                     "contested": lambda self, s, p, r: outcomes.lost(s, p, r)})()
    topic = s3_settings.source_topic
    async with _sink_behind_proxy(s3_settings, listener) as (sink, proxy):
        assert await sink.check() is None
        proxy.reject_uploads("InvalidStorageClass", 400)
        with caplog.at_level(logging.WARNING):
            await sink.write([_event(offset, 0, topic) for offset in range(3)])
            flushing = asyncio.create_task(sink.flush())
            await _until(lambda: proxy.rejected_uploads >= 5, 10)
            problem = await sink.check()
            # Paused, not dead-lettered; unready with the setting to fix.
            assert problem is not None and "SLUICE_S3_STORAGE_CLASS" in problem, problem
            assert "InvalidStorageClass" in problem
            assert sink.paused_calls == 1  # the metric to alert on (sluice_s3_paused_calls)
            assert outcomes.failed_ == [] and outcomes.delivered == []
            assert not flushing.done()
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and "SLUICE_S3_STORAGE_CLASS" in errors[0], errors

            proxy.reject_uploads(None)  # the operator fixes the setting / the bucket
            await asyncio.wait_for(flushing, 20)
        assert await sink.check() is None and sink.paused_calls == 0
        assert outcomes.delivered == ["e-0", "e-1", "e-2"] and outcomes.failed_ == []
    objects = await _objects(s3_settings, "logs/year=")
    ids = [orjson.loads(line)["event_id"] for body in objects.values()
           for line in gzip.decompress(body).splitlines()]
    assert sorted(ids) == ["e-0", "e-1", "e-2"]


class _HeldTicket:
    """A ticket whose S3 share never settles: its dead letter is held (the limit tripped)."""

    cancelled = False

    def settle(self, share: tuple[int, str]) -> None:
        raise AssertionError("a held dead letter settles nothing")

    def is_pending(self, share: tuple[int, str]) -> bool:
        return True


async def test_events_s3_rejects_whose_dead_letters_are_held_keep_the_marker_below_them(
    s3_settings: Settings,
) -> None:
    # S3 rejects the object for its content (EntityTooLarge): its events go to the dead-letter
    # publisher, which holds them instead (the dead-letter limit tripped) and returns. Moving
    # the marker past them would make the partition's next owner skip them as written: lost.
    lost: list[str] = []

    class Listener:
        def delivered(self, sink: str, events: Any) -> None:
            assert not events, "nothing was written"

        async def failed(self, sink: str, failures: Any) -> None:
            return None  # held: neither written nor settled

        def lost(self, sink: str, partition: Any, reason: str) -> None:
            lost.append(reason)

    topic = s3_settings.source_topic
    async with _sink_behind_proxy(s3_settings, Listener()) as (sink, proxy):
        proxy.reject_uploads("EntityTooLarge", 400)
        events = [_event(offset, 0, topic) for offset in range(3)]
        for event in events:
            event.ticket = _HeldTicket()
        await sink.write(events)
        await sink.flush()
    assert len(lost) == 1 and "not dead-lettered" in lost[0], lost
    markers = await _objects(s3_settings, "logs/_sluice/markers/")
    assert [orjson.loads(body)["next_offset"] for body in markers.values()] == [0]
    assert await _objects(s3_settings, "logs/year=") == {}


async def test_a_write_s3_refuses_stops_the_worker_at_start_naming_the_setting(
    s3_settings: Settings,
) -> None:
    # The start-up check writes a small object with the configured storage class and
    # encryption: a setting S3 refuses shows at start, in one line, not at the first upload.
    await preflight(s3_settings)  # the bucket exists
    proxy = FaultProxy(s3_settings.s3_endpoint_url or "", signed=True).start()
    proxy.reject_uploads("InvalidStorageClass", 400)
    try:
        with pytest.raises(S3StartupError, match="SLUICE_S3_STORAGE_CLASS") as caught:
            await preflight(s3_settings.model_copy(update={
                "s3_endpoint_url": proxy.url, "s3_storage_class": "GLACIER_IR"}))
        assert "InvalidStorageClass" in str(caught.value)
        assert "\n" not in str(caught.value)
        proxy.reject_uploads(None)
        await preflight(s3_settings.model_copy(update={"s3_endpoint_url": proxy.url}))
    finally:
        proxy.stop()
