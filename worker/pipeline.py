"""The pipeline: the Faust agent that consumes the source topic."""

from __future__ import annotations

import logging

import faust

from worker.config import Settings
from worker.progress import Progress

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 10.0


def register_pipeline(app: faust.App, settings: Settings) -> None:
    """Attach the source-topic agent and its progress timer to the app."""
    source = app.topic(
        settings.source_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    progress = Progress()

    @app.agent(source, name="sluice-pipeline")
    async def consume(stream: faust.StreamT) -> None:
        async for _record in stream:
            progress.add("consumed")

    @app.timer(interval=PROGRESS_INTERVAL_SECONDS)
    async def report_progress() -> None:
        log.info("progress: %s", progress.line())
