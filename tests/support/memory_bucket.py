"""An S3 bucket in memory: the calls an hourly merge makes (``S3Objects`` and its client), for
unit tests of the merger that need no server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


def _not_found(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "404", "Message": "Not Found"},
                        "ResponseMetadata": {"HTTPStatusCode": 404}}, operation)


class StreamBody:
    """An object's body as aiobotocore streams it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aenter__(self) -> StreamBody:
        return self

    async def __aexit__(self, *exc: object) -> None: ...

    async def read(self, size: int = -1) -> bytes:
        chunk, self._data = (self._data, b"") if size < 0 else (self._data[:size],
                                                               self._data[size:])
        return chunk


class MemoryBucket:
    """The S3 calls a merge makes (``S3Objects`` and its client), on objects in memory."""

    bucket = "b"

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = dict(objects)
        outer = self

        class Client:
            async def head_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
                if Key not in outer.objects:
                    raise _not_found("HeadObject")
                data = outer.objects[Key]
                return {"ContentLength": len(data), "ETag": hashlib.md5(data).hexdigest()}

            async def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
                if Key not in outer.objects:
                    raise _not_found("GetObject")
                return {"Body": StreamBody(outer.objects[Key])}

        self.client = Client()

    async def retrying(self, what: str, call: Any, *arguments: Any, **options: Any) -> Any:
        return await call(*arguments)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def upload(self, path: Path, key: str, size: int, content_type: str,
                     content_encoding: str | None = "gzip") -> None:
        self.objects[key] = await asyncio.to_thread(path.read_bytes)
