"""The S3 archive sink: hourly gzip NDJSON (or CSV) parts per partition, exactly once.

What it promises
----------------
* **Layout.** Events are filed by hour (received time by default, event time as an option) and
  by source partition, under the key template (``worker.sinks.s3_keys``): Firehose / Athena's
  hive layout by default, Segment's layout as a preset.
* **Few, large files.** A partition's open parts are uploaded together when one reaches
  SLUICE_S3_PART_MAX_BYTES (compressed) or SLUICE_S3_PART_MAX_EVENTS, when the oldest has waited
  SLUICE_S3_PART_MAX_AGE, when its hour has closed (plus SLUICE_S3_HOUR_CLOSE_GRACE), when
  SLUICE_S3_MAX_BUFFERED_EVENTS is reached (the fullest partition goes first), and on a
  rebalance or shutdown. Parts spool to local gzip files, so memory stays flat; large parts go
  up with multipart upload.
* **Exactly-once objects.** Keys are deterministic (topic, partition, first and last offset),
  and a per-partition marker (``worker.sinks.s3_markers``) records how far the partition is
  written, two-phase and with conditional writes: after a crash, a rebalance or a replay, events
  of records below the marker are not written again, and half-written flushes are finished or
  undone by the partition's next owner.
* **Failures.** Connection errors, 5xx, throttling, and also 403 / missing bucket after start-up
  are retried with backoff without limit: nothing is acknowledged meanwhile and consumption
  pauses. An object S3 rejects for its content (4xx) dead-letters its events with S3's error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, SSLError

from worker.config import S3Format, S3TimeField, Settings
from worker.errors import SinkRejected
from worker.records import Event
from worker.sinks.base import PartitionKey, Sink, SinkFailure, SinkOutcomes
from worker.sinks.s3_keys import (
    HourSlot,
    marker_key,
    object_key,
    render_directory,
    resolve_template,
)
from worker.sinks.s3_markers import Marker, MarkerStore, OwnershipLost, Pending
from worker.sinks.s3_parts import CsvColumns, OpenPart, ndjson_line

log = logging.getLogger(__name__)

NAME = "s3"
# S3 error codes that mean "try again later" rather than "this object is unacceptable".
# BadDigest / IncompleteBody: the bytes were damaged or cut on the way (a proxy, a network);
# the part on disk is intact and a retry sends it again.
_TRANSIENT_CODES = frozenset({
    "BadDigest", "IncompleteBody",
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestTimeTooSkewed", "AccessDenied", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "NoSuchBucket", "ExpiredToken", "TokenRefreshRequired",
})


class S3StartupError(Exception):
    """S3 cannot be used with these settings; the message says what to check."""


@dataclass
class S3SinkStats:
    """Counters the operations endpoints expose."""

    objects_written: int = 0
    bytes_written: int = 0
    events_written: int = 0
    events_skipped_already_written: int = 0
    dead_lettered: int = 0
    request_failures: int = 0
    upload_seconds: float = 0.0


@dataclass
class _PartitionState:
    """What the sink knows of one source partition it owns."""

    marker: Marker
    parts: dict[str, OpenPart] = field(default_factory=dict)
    next_offset: int = 0          # one past the last record handed to this sink
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    detached: bool = False        # no longer ours: events for it are ignored

    @property
    def buffered(self) -> int:
        return sum(len(part.events) for part in self.parts.values())


def make_client_context(settings: Settings) -> Any:
    """An aiobotocore S3 client context manager for the settings.

    Without SLUICE_AWS_ACCESS_KEY_ID, botocore finds credentials along the standard AWS chain
    (environment, shared files, IRSA, instance role). TLS is verified against
    SLUICE_S3_CA_BUNDLE, or the system's CAs.
    """
    return get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        verify=str(settings.s3_ca_bundle) if settings.s3_ca_bundle else None,
        config=AioConfig(
            s3={"addressing_style": settings.s3_addressing_style_for_endpoint},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        ),
    )


async def preflight(settings: Settings) -> None:
    """Check the bucket is reachable with these credentials (creating it if allowed)."""
    where = f"{settings.s3_endpoint_url or 'AWS S3'} bucket {settings.s3_bucket!r}"
    deadline = time.monotonic() + settings.s3_startup_timeout
    async with make_client_context(settings) as client:
        while True:
            try:
                await client.head_bucket(Bucket=settings.s3_bucket)
                return
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:
                    if not settings.s3_create_bucket:
                        raise S3StartupError(
                            f"{where} does not exist: create it, or set "
                            "SLUICE_S3_CREATE_BUCKET=true"
                        ) from error
                    await _create_bucket(client, settings)
                    log.info("created S3 bucket %s", settings.s3_bucket)
                    return
                if status in (401, 403):
                    raise S3StartupError(
                        f"{where}: access refused ({status}). Check SLUICE_AWS_ACCESS_KEY_ID / "
                        "SLUICE_AWS_SECRET_ACCESS_KEY (or the AWS credential chain) and that "
                        "they may list and write the bucket."
                    ) from error
                failure: Exception = error
            except (NoCredentialsError, SSLError) as error:
                raise S3StartupError(_not_retried_message(where, error)) from error
            except BotoCoreError as error:
                failure = error
            if time.monotonic() > deadline:
                raise S3StartupError(
                    f"{where} did not answer within {settings.s3_startup_timeout:.0f}s "
                    f"(SLUICE_S3_STARTUP_TIMEOUT): {failure}. Check SLUICE_S3_ENDPOINT_URL and "
                    "SLUICE_S3_REGION."
                ) from failure
            await asyncio.sleep(1.0)


def _not_retried_message(where: str, error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return (f"{where}: no AWS credentials found. Set SLUICE_AWS_ACCESS_KEY_ID / "
                "SLUICE_AWS_SECRET_ACCESS_KEY, or give the worker credentials through the AWS "
                "chain (AWS_* environment, AWS_PROFILE, IRSA, an instance role).")
    return (f"{where}: the TLS certificate is not trusted ({error}). Check SLUICE_S3_CA_BUNDLE "
            "(the CA that signed the endpoint's certificate) and SLUICE_S3_ENDPOINT_URL.")


async def _create_bucket(client: Any, settings: Settings) -> None:
    arguments: dict[str, Any] = {"Bucket": settings.s3_bucket}
    if settings.s3_region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": settings.s3_region}
    try:
        await client.create_bucket(**arguments)
    except ClientError as error:
        # AWS in us-east-1 answers 200; other S3 servers say the bucket is already ours.
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",):
            raise


class S3Sink(Sink):
    """Archives events to S3; see the module docstring for what it promises."""

    name = NAME

    def __init__(self, outcomes: SinkOutcomes, settings: Settings) -> None:
        super().__init__(outcomes)
        self.settings = settings
        self.stats = S3SinkStats()
        self._template = resolve_template(settings.s3_key_template)
        instance = uuid.uuid4().hex
        self._owner = f"{settings.app_id}/{instance}"
        # A directory of its own: several workers may share a state directory on one machine.
        self._spool_dir = settings.state_dir / "s3-spool" / instance
        if settings.s3_format == S3Format.CSV:
            columns = CsvColumns(settings.s3_csv_columns)
            self._encode, self._header, self._extension = columns.line, columns.header(), "csv.gz"
        else:
            self._encode, self._header, self._extension = ndjson_line, b"", "ndjson.gz"
        self._partitions: dict[PartitionKey, _PartitionState] = {}
        # Bumped when a partition is forgotten: a take-over that was under way is void.
        self._generations: dict[PartitionKey, int] = {}
        self._client_context: Any = None
        self._client: Any = None
        self._markers: MarkerStore | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._part_counter = 0

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        self._client_context = make_client_context(self.settings)
        self._client = await self._client_context.__aenter__()
        self._markers = MarkerStore(self._client, self.settings.s3_bucket, self._owner)
        self._ticker = asyncio.create_task(self._flush_when_due(), name="s3-due")

    async def check(self) -> str | None:
        try:
            await self._client.head_bucket(Bucket=self.settings.s3_bucket)
        except (ClientError, BotoCoreError) as error:
            return f"bucket {self.settings.s3_bucket}: {error}"
        return None

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        for state in self._partitions.values():
            for part in state.parts.values():
                part.discard()
        if self._client_context:
            await self._client_context.__aexit__(None, None, None)
        shutil.rmtree(self._spool_dir, ignore_errors=True)

    @property
    def open_parts(self) -> int:
        return sum(len(state.parts) for state in self._partitions.values())

    @property
    def buffered_events(self) -> int:
        return sum(state.buffered for state in self._partitions.values())

    # --- the contract ---------------------------------------------------------------------

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        first = events[0].position
        key = (first.topic, first.partition)
        state = self._partitions.get(key) or await self._take_over(key)
        if state.detached:
            return  # revoked: the partition's next owner consumes these records again
        already_written: list[Event] = []
        for event in events:
            if event.position.offset < state.marker.next_offset:
                already_written.append(event)
                continue
            self._append(state, event)
        state.next_offset = max(state.next_offset, events[-1].position.offset + 1)
        if already_written:
            self.stats.events_skipped_already_written += len(already_written)
            self.outcomes.delivered(NAME, already_written)
        if self._partition_full(state):
            await self._flush_partition(key)
        elif self.buffered_events >= self.settings.s3_max_buffered_events:
            fullest = max(self._partitions, key=lambda k: self._partitions[k].buffered)
            await self._flush_partition(fullest)

    async def flush(self) -> None:
        await asyncio.gather(*(self._flush_partition(key) for key in list(self._partitions)))
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)

    async def forget(self, partitions: Collection[PartitionKey]) -> None:
        for key in partitions:
            self._generations[key] = self._generations.get(key, 0) + 1
            state = self._partitions.pop(key, None)
            if state:
                for part in state.parts.values():
                    part.discard()

    # --- filling parts --------------------------------------------------------------------

    def _append(self, state: _PartitionState, event: Event) -> None:
        document = event.document
        time_field = self.settings.s3_time_field
        stamp = document["received_at" if time_field == S3TimeField.RECEIVED_AT else "timestamp"]
        slot = HourSlot.of(stamp)
        position = event.position
        directory = render_directory(self._template, slot, document, position.topic,
                                     position.partition)
        part = state.parts.get(directory)
        if part is None:
            self._part_counter += 1
            path = self._spool_dir / (
                f"{position.topic}-{position.partition}-{self._part_counter}.part.gz")
            part = OpenPart(path, directory, slot, self.settings.s3_gzip_level, self._header)
            state.parts[directory] = part
        # Keep only what acknowledgement and dead-lettering need: not the document.
        line = (event.encoded + b"\n") if (event.encoded and self._header == b"") \
            else self._encode(document)
        part.add(line, Event(event.event_id, {}, event.record, event.batch_index, event.ticket))

    def _partition_full(self, state: _PartitionState) -> bool:
        return any(
            part.compressed_bytes >= self.settings.s3_part_max_bytes
            or len(part.events) >= self.settings.s3_part_max_events
            for part in state.parts.values()
        )

    def _partition_due(self, state: _PartitionState, now_monotonic: float, now: float) -> bool:
        grace = self.settings.s3_hour_close_grace
        return any(
            now_monotonic - part.opened_at >= self.settings.s3_part_max_age
            or now >= part.slot.end_epoch + grace
            for part in state.parts.values()
        )

    async def _flush_when_due(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now_monotonic, now = time.monotonic(), time.time()
            for key, state in list(self._partitions.items()):
                if state.parts and not state.lock.locked() and \
                        self._partition_due(state, now_monotonic, now):
                    task = asyncio.create_task(self._flush_partition(key), name="s3-flush")
                    self._flushes.add(task)
                    task.add_done_callback(self._flush_finished)

    def _flush_finished(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled() and task.exception():
            log.error("S3 flush failed: %r (its records stay unacknowledged and are consumed "
                      "again)", task.exception(), exc_info=task.exception())

    # --- taking a partition over ----------------------------------------------------------

    async def _take_over(self, key: PartitionKey) -> _PartitionState:
        """Read the partition's marker, finish or undo a half-done flush, and claim it."""
        assert self._markers is not None, "S3Sink.start() was not called"
        generation = self._generations.get(key, 0)
        where = marker_key(self.settings.s3_prefix, *key)
        marker = await self._retrying(f"read marker {where}", self._markers.load, where,
                                     permanent_4xx=False)
        next_offset = marker.next_offset
        if marker.pending:
            exists = [await self._retrying("check object", self._exists, k, permanent_4xx=False)
                      for k in marker.pending.keys]
            if all(exists):
                next_offset = marker.pending.next_offset
                log.info("%s[%d]: previous owner's parts all uploaded: rolling forward to %d",
                         *key, next_offset)
            else:
                for object_name, present in zip(marker.pending.keys, exists, strict=True):
                    if present:
                        await self._retrying("delete object", self._delete, object_name,
                                              permanent_4xx=False)
                log.info("%s[%d]: previous owner's flush was incomplete: removed its parts, "
                         "rewriting from offset %d", *key, next_offset)
        claimed = await self._retrying(
            f"claim marker {where}", self._markers.write, where, Marker(next_offset), marker.etag,
            permanent_4xx=False)
        state = _PartitionState(marker=claimed, next_offset=next_offset)
        if self._generations.get(key, 0) != generation:
            state.detached = True  # revoked while we were taking it over: write nothing
            return state
        self._partitions[key] = state
        log.info("%s[%d]: S3 holds every record below offset %d", *key, next_offset)
        return state

    # --- flushing -------------------------------------------------------------------------

    async def _flush_partition(self, key: PartitionKey) -> None:
        state = self._partitions.get(key)
        if state is None:
            return
        async with state.lock:
            if not state.parts or self._partitions.get(key) is not state:
                return
            parts, state.parts = list(state.parts.values()), {}
            through = state.next_offset
            await self._upload_parts(key, state, parts, through)

    async def _upload_parts(self, key: PartitionKey, state: _PartitionState,
                            parts: list[OpenPart], through: int) -> None:
        assert self._markers is not None
        where = marker_key(self.settings.s3_prefix, *key)
        keys = [object_key(self.settings.s3_prefix, p.directory, key[0], key[1],
                           p.first_offset or 0, p.last_offset, self._extension) for p in parts]
        uploaded: list[str] = []
        rejected: list[SinkFailure] = []
        try:
            pending = Marker(state.marker.next_offset, Pending(through, keys))
            state.marker = await self._retrying(
                f"write marker {where}", self._markers.write, where, pending, state.marker.etag,
                permanent_4xx=False)
            for part, object_name in zip(parts, keys, strict=True):
                size = part.finish()
                started = time.monotonic()
                try:
                    await self._retrying(f"upload {object_name}", self._upload, part, object_name,
                                         size)
                    self.stats.upload_seconds += time.monotonic() - started
                    uploaded.append(object_name)
                    self.stats.objects_written += 1
                    self.stats.bytes_written += size
                    log.info("wrote s3://%s/%s: %d events, offsets %s-%d, %d bytes",
                             self.settings.s3_bucket, object_name, len(part.events),
                             part.first_offset, part.last_offset, size,
                             extra={"object_key": object_name, "topic": key[0],
                                    "partition": key[1], "first_offset": part.first_offset,
                                    "last_offset": part.last_offset, "events": len(part.events)})
                except _Rejected as rejection:
                    rejected.extend(SinkFailure(e, SinkRejected(str(rejection), sink=NAME))
                                    for e in part.events)
            if rejected:
                # Dead-lettered before the marker moves past them: a crash in between must not
                # leave them neither in S3 nor in the dead-letter topic.
                self.stats.dead_lettered += len(rejected)
                await self.outcomes.failed(NAME, rejected)
            done = Marker(through)
            state.marker = await self._retrying(
                f"write marker {where}", self._markers.write, where, done, state.marker.etag,
                permanent_4xx=False)
        except OwnershipLost:
            # Not deleted: the new owner may have written the very same keys itself.
            log.warning("%s[%d]: another worker owns this partition now: dropping %d parts, "
                        "its new owner writes them (already uploaded here: %s)",
                        *key, len(parts), ", ".join(uploaded) or "none")
            if self._partitions.get(key) is state:
                self._partitions.pop(key)
            return
        finally:
            for part in parts:
                part.discard()
        written = [e for part, name in zip(parts, keys, strict=True) if name in uploaded
                   for e in part.events]
        self.stats.events_written += len(written)
        self.outcomes.delivered(NAME, written)

    async def _upload(self, part: OpenPart, object_name: str, size: int) -> None:
        extra: dict[str, Any] = {"ContentType": "application/x-ndjson"
                                 if self._extension.startswith("ndjson") else "text/csv",
                                 "ContentEncoding": "gzip"}
        if self.settings.s3_server_side_encryption:
            extra["ServerSideEncryption"] = self.settings.s3_server_side_encryption
        if self.settings.s3_sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.settings.s3_sse_kms_key_id
        if self.settings.s3_storage_class:
            extra["StorageClass"] = self.settings.s3_storage_class
        bucket = self.settings.s3_bucket
        if size <= self.settings.s3_multipart_threshold:
            await self._client.put_object(Bucket=bucket, Key=object_name,
                                          Body=part.path.read_bytes(), **extra)
            return
        upload = await self._client.create_multipart_upload(Bucket=bucket, Key=object_name,
                                                            **extra)
        upload_id = upload["UploadId"]
        try:
            completed = []
            with part.path.open("rb") as spool:
                number = 1
                while chunk := spool.read(self.settings.s3_multipart_chunk_bytes):
                    answer = await self._client.upload_part(
                        Bucket=bucket, Key=object_name, UploadId=upload_id,
                        PartNumber=number, Body=chunk)
                    completed.append({"PartNumber": number, "ETag": answer["ETag"]})
                    number += 1
            await self._client.complete_multipart_upload(
                Bucket=bucket, Key=object_name, UploadId=upload_id,
                MultipartUpload={"Parts": completed})
        except BaseException:
            await self._client.abort_multipart_upload(Bucket=bucket, Key=object_name,
                                                      UploadId=upload_id)
            raise

    async def _exists(self, object_name: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.settings.s3_bucket, Key=object_name)
            return True
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    async def _delete(self, object_name: str) -> None:
        await self._client.delete_object(Bucket=self.settings.s3_bucket, Key=object_name)

    async def _retrying(self, what: str, call: Any, *arguments: Any,
                        permanent_4xx: bool = True) -> Any:
        """Run an S3 call until it succeeds; transient failures are retried without limit.

        With `permanent_4xx`, a 4xx that retrying cannot fix raises `_Rejected` (the object's
        events are dead-lettered); without it (markers, checks) it is retried like the rest.
        """
        attempt = 0
        while True:
            try:
                return await call(*arguments)
            except OwnershipLost:
                raise
            except ClientError as error:
                code = error.response["Error"]["Code"]
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if permanent_4xx and code not in _TRANSIENT_CODES and 400 <= status < 500 \
                        and status != 429:
                    raise _Rejected(f"S3 refused to {what}: {code} ({status}): "
                                    f"{error.response['Error'].get('Message', '')}") from error
                failure = f"{code} ({status})"
            except BotoCoreError as error:  # connection trouble; local file errors are not retried
                failure = f"{type(error).__name__}: {error}"
            attempt += 1
            self.stats.request_failures += 1
            ceiling = min(self.settings.s3_retry_max,
                          self.settings.s3_retry_initial * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)
            log.warning("S3: could not %s (%s); retry %d in %.1fs", what, failure, attempt, delay)
            await asyncio.sleep(delay)


class _Rejected(Exception):
    """S3 refused a request for good (a 4xx that retrying will not fix)."""
