"""gzip of NDJSON parts, compressed a whole buffer at a time with python-isal (igzip).

Measured by ``python -m bench.codecs`` on the benchmark's normalised documents (about 780 bytes
of JSON each, 1000-event buffers, two runs on the shared 2-core machine): igzip level 1
compresses at 0.5-0.9 µs an event for a ratio of 8.4; the standard library's gzip level 6,
written one event at a time as S3 parts are written today, costs 7.6-17 µs an event for a ratio
of 10.2. Level 1 is the default: 14-18 times faster for about 20% more bytes. Level 2 is no
faster and barely smaller (8.5), level 3 is slower and no smaller, level 0 is for CPU-starved
workers (ratio 6.3). zlib-ng level 6 (ratio 10.5) costs 3-4.5 µs an event, if bytes matter more.

The output is one ordinary gzip stream (a single member), whatever the number of buffers: any
gzip reader, DuckDB and Athena read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from isal import isal_zlib

# igzip knows four levels; 1 is the measured best trade (see the module docstring).
LEVELS = range(0, 4)
DEFAULT_LEVEL = 1
# zlib's window bits for a gzip header and trailer around the deflate stream.
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS


class InvalidGzipLevel(ValueError):
    """A gzip level igzip does not have."""


def check_level(level: int) -> int:
    """The level, if igzip has it; else an error that names the accepted levels."""
    if level not in LEVELS:
        raise InvalidGzipLevel(
            f"gzip level {level} is not available: python-isal (igzip) levels are 0 to 3 "
            f"(1 is the default: 14-18x the speed of zlib level 6 for ~20% more bytes)")
    return level


class GzipWriter:
    """Writes gzip to a binary file, compressing whole buffers of encoded lines at a time.

    ``write_lines`` takes the lines of many events at once (each ending in a newline): one call
    into the compressor per buffer instead of one per event is where the time goes.
    ``close`` writes the gzip trailer; the file itself stays open (it belongs to the caller).
    """

    def __init__(self, out: BinaryIO, level: int = DEFAULT_LEVEL) -> None:
        self._out = out
        self._compressor = isal_zlib.compressobj(check_level(level), isal_zlib.DEFLATED,
                                                 _GZIP_WBITS)
        self.bytes_in = 0
        self.bytes_out = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        """Compress one buffer (e.g. many NDJSON lines joined)."""
        if self.closed:
            raise ValueError("write to a closed GzipWriter")
        self.bytes_in += len(data)
        self._emit(self._compressor.compress(data))

    def write_lines(self, lines: Iterable[bytes]) -> None:
        """Compress the lines as one buffer."""
        self.write(b"".join(lines))

    def close(self) -> None:
        """Finish the gzip stream (idempotent)."""
        if not self.closed:
            self._emit(self._compressor.flush())
            self.closed = True

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self._out.write(chunk)
            self.bytes_out += len(chunk)

    def __enter__(self) -> GzipWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def compress(data: bytes, level: int = DEFAULT_LEVEL) -> bytes:
    """One whole buffer as a complete gzip stream."""
    from isal import igzip

    return igzip.compress(data, check_level(level))
