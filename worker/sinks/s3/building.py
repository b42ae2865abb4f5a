"""Building one merged object from its hour parts: downloaded to the spool, merged by stream
(``worker.sinks.s3.merge``), uploaded; and what S3 says of a part (its size and ETag).

A part that cannot be used (missing from the bucket, truncated or corrupt, of a schema the
other parts cannot take) raises ``Unmergeable``, naming the part: retrying the same bytes
cannot help, so the merger parks the plan (``worker.sinks.s3.parking``) instead of trying it
again at every tick. Anything else (S3 or the spool failing) is retried as before.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from worker.sinks.s3.markers import MergeOutput
from worker.sinks.s3.merge import (
    COPY_CHUNK,
    BadPart,
    append_gzip,
    gzip_header,
    is_parquet,
    merge_parquet,
    merged_as,
)
from worker.sinks.s3.objects import S3Objects
from worker.sinks.s3.triage import status_of

MISSING_PART = "missing_part"


class Unmergeable(Exception):
    """An output of a committed merge plan cannot be built from its parts."""

    def __init__(self, cause: str, part: str, detail: str) -> None:
        super().__init__(f"hour part {part} {detail}")
        self.cause = cause
        self.part = part


@dataclass(frozen=True)
class Head:
    """What S3 says of an object without reading it."""

    size: int
    etag: str


class OutputBuilder:
    """Builds merged objects in the spool directory and uploads them."""

    def __init__(self, objects: S3Objects, spool_dir: Path) -> None:
        self.objects = objects
        self.spool_dir = spool_dir

    async def build_and_upload(self, output: MergeOutput, header: str) -> None:
        """Build one output from its parts and upload it; Unmergeable if a part is missing or
        unusable (nothing is uploaded then)."""
        objects = self.objects
        token = uuid.uuid4().hex
        merged = self.spool_dir / f"merge-{token}"
        downloads: dict[Path, str] = {}
        try:
            parquet = is_parquet(output.key)
            with merged.open("wb") as out:
                out.write(gzip_header(header))
                for number, part in enumerate(output.parts):
                    local = self.spool_dir / f"merge-{token}-{number}"
                    downloads[local] = part
                    if not await objects.retrying(f"download {part}", self._download, part,
                                                  local):
                        raise Unmergeable(MISSING_PART, part, "is missing from the bucket")
                    if not parquet:
                        await asyncio.to_thread(self._append, out, local, part)
                        local.unlink()
            if parquet:
                try:
                    await asyncio.to_thread(merge_parquet, list(downloads), merged)
                except BadPart as bad:
                    raise Unmergeable(bad.cause, downloads[bad.path], bad.detail) from None
            size = merged.stat().st_size
            content_type, content_encoding = merged_as(output.key)
            await objects.retrying(f"upload {output.key}", objects.upload, merged, output.key,
                                   size, content_type, content_encoding)
        finally:
            merged.unlink(missing_ok=True)
            for local in downloads:
                local.unlink(missing_ok=True)

    @staticmethod
    def _append(out: object, local: Path, part: str) -> None:
        try:
            append_gzip(out, local)  # type: ignore[arg-type]
        except BadPart as bad:
            raise Unmergeable(bad.cause, part, bad.detail) from None

    async def _download(self, key: str, path: Path) -> bool:
        """Stream an object to a local file; False if it does not exist."""
        try:
            response = await self.objects.client.get_object(Bucket=self.objects.bucket, Key=key)
        except ClientError as error:
            if status_of(error) == 404 or error.response["Error"]["Code"] == "NoSuchKey":
                return False
            raise
        with path.open("wb") as out:
            async with response["Body"] as stream:
                while chunk := await stream.read(COPY_CHUNK):
                    out.write(chunk)
        return True

    async def head(self, key: str) -> Head | None:
        """The object's size and ETag; None if it does not exist (a 404 is an answer, not a
        fault to retry)."""
        async def head() -> Head | None:
            try:
                answer = await self.objects.client.head_object(Bucket=self.objects.bucket,
                                                               Key=key)
            except ClientError as error:
                if status_of(error) == 404:
                    return None
                raise
            return Head(int(answer["ContentLength"]), str(answer.get("ETag") or ""))

        result: Head | None = await self.objects.retrying("check object", head)
        return result
