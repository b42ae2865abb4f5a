"""gzip of whole NDJSON buffers with igzip: standard gzip out, levels checked with a clear error."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from worker.sinks.s3.formats.compression import (
    DEFAULT_LEVEL,
    GzipWriter,
    InvalidGzipLevel,
    compress,
)

LINES = [b'{"event_id":"e%d","type":"track","n":%d}\n' % (i, i) for i in range(3000)]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_buffers_written_together_read_back_as_one_gzip_stream(level: int) -> None:
    out = io.BytesIO()
    with GzipWriter(out, level) as writer:
        for start in range(0, len(LINES), 1000):
            writer.write_lines(LINES[start:start + 1000])
    data = out.getvalue()
    assert gzip.decompress(data) == b"".join(LINES)
    # One member: a plain zlib gzip decoder stops at the end of the first member.
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(data) == b"".join(LINES) and decoder.unused_data == b""
    assert writer.bytes_in == len(b"".join(LINES)) and writer.bytes_out == len(data)


def test_close_is_idempotent_and_writing_after_it_is_refused() -> None:
    out = io.BytesIO()
    writer = GzipWriter(out)
    writer.write(b"x\n")
    writer.close()
    size = len(out.getvalue())
    writer.close()
    assert len(out.getvalue()) == size
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"y\n")


def test_empty_writer_still_makes_a_valid_gzip_file() -> None:
    out = io.BytesIO()
    GzipWriter(out).close()
    assert gzip.decompress(out.getvalue()) == b""


@pytest.mark.parametrize("level", [-1, 4, 6, 9])
def test_unknown_level_names_the_accepted_levels(level: int) -> None:
    with pytest.raises(InvalidGzipLevel, match="levels are 0 to 3"):
        GzipWriter(io.BytesIO(), level)


def test_compress_one_buffer() -> None:
    data = b"".join(LINES)
    assert gzip.decompress(compress(data)) == data
    assert DEFAULT_LEVEL == 1
