"""Hostile clients of `sluice ingest`, bounded in count and time: what the internet sends.

Shared by ``python -m bench.ingest --hostile`` and ``tests/e2e/test_ingest_hostile.py``. Every
attacker speaks raw HTTP over its own connection (aiohttp's client would refuse the malformed
parts) and names a client address of its own in ``X-Forwarded-For``, as clients behind a proxy
would: the server under attack trusts 127.0.0.1 as its proxy.

* ``slowloris``: connections that begin a request and send one header byte now and then;
* ``big_bodies``: 15 MiB bodies, half without credentials, half with a made-up
  ``X-Signature`` (which makes the server read the body before it can say no);
* ``bad_headers``: credential headers holding bytes that are not UTF-8, and header lines aiohttp
  cannot parse;
* ``failure_burst``: one client address guessing a bearer token as fast as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

MIB = 1024 * 1024
_ADDRESSES = itertools.count(1)


def next_address() -> str:
    """A client address of its own for the next attacker (from 100.64.0.0/10, a shared
    address space no client on loopback has)."""
    return str(ipaddress.IPv4Address("100.64.0.0") + next(_ADDRESSES))


@dataclass
class Attack:
    """How much of each attack: the issue's counts by default."""

    slowloris: int = 500
    big_bodies: int = 50
    big_body_bytes: int = 15 * MIB
    bad_headers: int = 200
    failure_burst: int = 100
    trickle_seconds: float = 2.0  # a slowloris connection sends a header byte this often
    seconds: float = 30.0  # no attacker goes on longer


@dataclass
class AttackReport:
    """What the attackers got back: statuses by attack, how long slowloris connections lived."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    slowloris_open_seconds: list[float] = field(default_factory=list)

    def count(self, attack: str, status: int) -> None:
        self.statuses.setdefault(attack, Counter())[status] += 1

    def summary(self) -> dict[str, dict[int, int]]:
        return {attack: dict(counts) for attack, counts in sorted(self.statuses.items())}


async def _status(reader: asyncio.StreamReader, timeout: float) -> int:
    """The status of the next answer (0: the connection closed or reset without one)."""
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readline()
    except (TimeoutError, ConnectionError):
        return 0
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _head(path: str, length: int, lines: list[bytes]) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: sluice\r\nContent-Length: {length}\r\n"
            f"X-Forwarded-For: {next_address()}\r\n").encode() + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n"


async def slowloris(port: int, attack: Attack, report: AttackReport) -> None:
    """Connections that never finish their headers."""

    async def one(n: int) -> None:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            report.count("slowloris", -1)  # not even accepted
            return
        try:
            writer.write(b"POST /segment HTTP/1.1\r\nHost: sluice\r\nX-Slow: ")
            status_task = asyncio.ensure_future(_status(reader, attack.seconds))
            while not status_task.done() and time.monotonic() - started < attack.seconds:
                await asyncio.wait([status_task], timeout=attack.trickle_seconds)
                with contextlib.suppress(ConnectionError):
                    writer.write(b"a")
            status = await status_task
            report.count("slowloris", status)
            report.slowloris_open_seconds.append(time.monotonic() - started)
        finally:
            _close(writer)

    await asyncio.gather(*(one(n) for n in range(attack.slowloris)))


async def big_bodies(port: int, attack: Attack, report: AttackReport) -> None:
    """Large bodies that no credential allows, sent as fast as the server takes them."""
    chunk = b"x" * (256 * 1024)

    async def one(n: int) -> None:
        lines = [b"X-Signature: " + b"0" * 40] if n % 2 else []
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            report.count("big_body", -1)
            return
        status_task = asyncio.ensure_future(_status(reader, attack.seconds))
        try:
            writer.write(_head("/segment", attack.big_body_bytes, lines))
            sent = 0
            while sent < attack.big_body_bytes and not status_task.done():
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            report.count("big_body", await status_task)
            _close(writer)

    await asyncio.gather(*(one(n) for n in range(attack.big_bodies)))


BAD_HEADERS = [
    ("/segment", b"X-Signature: \xff\xfe\xfd"),
    ("/firehose", b"X-Amz-Firehose-Access-Key: \xc3\x28key"),
    ("/events", b"Authorization: Bearer \xff"),
    ("/segment", b"Authorization: Basic \xfe\xff"),
    ("/events", b"Bad\x01Header: x"),  # not a header line at all: aiohttp's own 400
]


async def bad_headers(port: int, attack: Attack, report: AttackReport) -> None:
    """Requests whose credential headers cannot be read, a few at a time."""
    body = b'{"type":"track","event":"bad header","userId":"u","messageId":"hostile"}'
    semaphore = asyncio.Semaphore(20)

    async def one(n: int) -> None:
        path, header = BAD_HEADERS[n % len(BAD_HEADERS)]
        async with semaphore:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                report.count("bad_header", -1)
                return
            try:
                writer.write(_head(path, len(body), [header]) + body)
                report.count("bad_header", await _status(reader, attack.seconds))
            finally:
                _close(writer)

    await asyncio.gather(*(one(n) for n in range(attack.bad_headers)))


async def failure_burst(port: int, attack: Attack, report: AttackReport) -> None:
    """One client address guessing bearer tokens back to back on one connection."""
    address = next_address()
    body = b'{"type":"track","event":"guess","userId":"u","messageId":"guess"}'
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        report.count("failure_burst", -1)
        return
    try:
        for n in range(attack.failure_burst):
            writer.write((f"POST /events HTTP/1.1\r\nHost: sluice\r\nContent-Length: {len(body)}"
                          f"\r\nX-Forwarded-For: {address}\r\nAuthorization: Bearer guess-{n}"
                          "\r\n\r\n").encode() + body)
            status = await _status(reader, attack.seconds)
            report.count("failure_burst", status)
            if status == 0:
                break
            headers = await _skip_headers_and_body(reader)
            if headers.get(b"connection") == b"close":
                _close(writer)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        _close(writer)


async def _skip_headers_and_body(reader: asyncio.StreamReader) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return headers


async def run_attack(port: int, attack: Attack, report: AttackReport) -> None:
    """Every attack at once, until each is answered or `attack.seconds` have passed."""
    await asyncio.gather(slowloris(port, attack, report), big_bodies(port, attack, report),
                         bad_headers(port, attack, report), failure_burst(port, attack, report))
