"""S3 object calls of the archive sink, with its retry rules in one place.

Every call is retried with exponential backoff and jitter until it succeeds, whatever S3
answers, with one exception: an error about the object's own content (``worker.sinks.s3.triage``)
raises ``Rejected`` when the caller says the request's content may be at fault (an object
upload), and its events are dead-lettered. A configuration fault (a storage class, a KMS key,
a bucket policy, a deleted bucket) pauses the sink: it is retried like a transient failure,
logged once per change, and held in ``faults`` (what the sink's readiness check reports, with
the setting to fix) while a call that met it is still retrying: until that call succeeds, or
ends otherwise (cancelled by a revocation or the drain).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.sinks.s3.markers import OwnershipLost
from worker.sinks.s3.triage import Refusal, Triage, status_of

log = logging.getLogger(__name__)


class Rejected(Exception):
    """S3 refused a request for good (a 4xx that retrying will not fix)."""


@dataclass
class RetryPolicy:
    initial: float
    maximum: float


class S3Objects:
    """Uploads, copies, checks and deletes objects of one bucket, retrying as described above."""

    def __init__(self, client: Any, bucket: str, policy: RetryPolicy,
                 object_arguments: dict[str, Any], multipart_threshold: int,
                 multipart_chunk_bytes: int, on_failure: Callable[[], None]) -> None:
        self.client = client
        self.bucket = bucket
        self.policy = policy
        # Arguments every stored object gets (encryption, storage class); copies too, since S3
        # does not carry them over on a copy.
        self.object_arguments = object_arguments
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk_bytes = multipart_chunk_bytes
        self._on_failure = on_failure
        # The configuration fault each call still retrying has met, by call: a fault goes when
        # its call succeeds or ends otherwise (cancelled by a revocation, ownership lost), so
        # the readiness check never reports a fault nothing waits on any more, and a marker
        # write that succeeds does not hide an upload still refused.
        self._faults_by_call: dict[object, tuple[str, str]] = {}

    @property
    def faults(self) -> dict[str, str]:
        """The configuration faults S3 calls are retrying on now, by kind of call (upload,
        copy, write, …)."""
        return {kind: fault for kind, fault in self._faults_by_call.values()}

    async def retrying(self, what: str, call: Callable[..., Awaitable[Any]], *arguments: Any,
                       permanent_4xx: bool = False) -> Any:
        """Run an S3 call until it succeeds; transient failures are retried without limit."""
        token = object()
        try:
            return await self._retry(token, what, call, arguments, permanent_4xx)
        finally:
            held = self._faults_by_call.pop(token, None)
            if held is not None and held[0] not in self.faults:
                # Cancelled (a revocation, the drain) or handed on: nothing waits on it now.
                log.info("S3: no %s is retried after %s any more", held[0],
                         held[1].split(";")[0])

    async def _retry(self, token: object, what: str, call: Callable[..., Awaitable[Any]],
                     arguments: tuple[Any, ...], permanent_4xx: bool) -> Any:
        attempt = 0
        kind = getattr(call, "__name__", "call")
        while True:
            try:
                result = await call(*arguments)
            except OwnershipLost:
                raise
            except ClientError as error:
                refusal = Refusal.of(error)
                if permanent_4xx and refusal.verdict.triage is Triage.CONTENT:
                    raise Rejected(f"S3 refused to {what}: {refusal.code} ({refusal.status}): "
                                   f"{refusal.message}") from error
                failure = f"{refusal.code} ({refusal.status})"
                if refusal.verdict.triage is not Triage.TRANSIENT:
                    self._report_fault(token, kind,
                                       f"S3 refused to {kind}: {refusal.advice()}")
            except BotoCoreError as error:  # connection trouble; local file errors are not retried
                failure = f"{type(error).__name__}: {error}"
            else:
                if (self._faults_by_call.pop(token, None) is not None
                        and kind not in self.faults):
                    log.warning("S3: %s accepted again; the sink resumes", kind)
                return result
            attempt += 1
            self._on_failure()
            ceiling = min(self.policy.maximum, self.policy.initial * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)
            log.log(logging.DEBUG if token in self._faults_by_call else logging.WARNING,
                    "S3: could not %s (%s); retry %d in %.1fs", what, failure, attempt, delay)
            await asyncio.sleep(delay)

    def _report_fault(self, token: object, kind: str, fault: str) -> None:
        """Hold a call's configuration fault for the readiness check; log it once per change
        (not again for every call of the kind that meets the same fault)."""
        if (kind, fault) not in self._faults_by_call.values():
            log.error("%s; paused: nothing is acknowledged or dead-lettered, the request is "
                      "retried until S3 accepts it", fault)
        self._faults_by_call[token] = (kind, fault)

    async def upload(self, path: Path, key: str, size: int, content_type: str,
                     content_encoding: str | None = "gzip") -> None:
        """Store a local file (gzip unless told otherwise) as `key` (multipart above the
        threshold)."""
        extra = {"ContentType": content_type, **self.object_arguments}
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        if size <= self.multipart_threshold:
            body = await asyncio.to_thread(path.read_bytes)
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            return
        upload = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        upload_id = upload["UploadId"]
        try:
            completed = []
            with path.open("rb") as spool:
                number = 1
                while chunk := spool.read(self.multipart_chunk_bytes):
                    answer = await self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id,
                        PartNumber=number, Body=chunk)
                    completed.append({"PartNumber": number, "ETag": answer["ETag"]})
                    number += 1
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": completed})
        except BaseException:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                     UploadId=upload_id)
            raise

    async def copy(self, source: str, key: str) -> bool:
        """Copy `source` to `key` (metadata kept); False if `source` does not exist."""
        try:
            await self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source},
                MetadataDirective="COPY", **self.object_arguments)
        except ClientError as error:
            if status_of(error) == 404 or error.response["Error"]["Code"] == "NoSuchKey":
                return False
            raise
        return True

    async def exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as error:
            if status_of(error) == 404:
                return False
            raise

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)
