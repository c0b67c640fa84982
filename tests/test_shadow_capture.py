"""``Capture`` (the bounded tee) and ``decode`` (Content-Encoding, bounded)."""

from __future__ import annotations

import asyncio
import doctest
import gzip
import importlib
import zlib

import pytest
from multidict import CIMultiDict

import strangler.shadow.capture as capture_module
from strangler.shadow.capture import Capture, Undecodable, decode


def test_doctests() -> None:
    assert doctest.testmod(capture_module).failed == 0


async def next_turn() -> None:
    """Let every ready task run once (one event-loop iteration; no timed wait)."""
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, None)
    await fut


def test_keeps_everything_up_to_the_limit() -> None:
    c = Capture(10)
    c.feed(b"12345")
    c.feed(b"67890")  # exactly the limit
    c.done(True)
    assert (c.body, c.truncated, c.complete, c.seen) == (b"1234567890", False, True, 10)


def test_over_the_limit_frees_and_stops_keeping() -> None:
    c = Capture(10)
    c.feed(b"12345")
    c.feed(b"678901")  # one byte too many
    assert c.truncated
    assert c._parts == []  # what was kept is freed at once
    for _ in range(1000):
        c.feed(b"x" * 1000)  # O(1), nothing kept
    assert c._parts == []
    c.done(True)
    assert (c.body, c.seen) == (None, 10 + 1 + 1_000_000)


def test_bytes_kept_by_reference_buffers_copied() -> None:
    chunk = b"abc"
    c = Capture(100)
    c.feed(chunk)
    assert c._parts[0] is chunk
    buf = bytearray(b"def")
    c.feed(buf)
    c.feed(memoryview(b"ghi"))
    buf[:] = b"XXX"  # the producer reuses its buffer: the capture kept a copy
    assert c.body == b"abcdefghi"


def test_zero_limit_captures_nothing_but_empty() -> None:
    c = Capture(0)
    c.done(True)
    assert c.body == b""
    c = Capture(0)
    c.feed(b"x")
    assert c.body is None


def test_done_is_idempotent_and_first_wins() -> None:
    c = Capture(10)
    c.done(False)
    c.done(True)
    assert (c.finished, c.complete) == (True, False)
    c.feed(b"late")  # after done: not kept
    assert c.body == b""


def test_head_is_recorded() -> None:
    c = Capture(10)
    assert c.status == 0
    h = CIMultiDict({"Content-Type": "text/plain"})
    c.head(201, h)
    assert (c.status, c.headers) == (201, h)


async def test_wait_wakes_on_done() -> None:
    c = Capture(10)
    waiter = asyncio.ensure_future(c.wait())
    other = asyncio.ensure_future(c.wait())
    await next_turn()  # both are waiting now
    assert c._waiter is not None
    assert not waiter.done()
    c.feed(b"x")
    c.done(True)
    assert await waiter is True
    assert await other is True
    assert await c.wait() is True  # after done: at once


async def test_a_cancelled_waiter_does_not_break_the_others() -> None:
    c = Capture(10)
    first = asyncio.ensure_future(c.wait())
    second = asyncio.ensure_future(c.wait())
    await next_turn()
    first.cancel()
    c.done(False)
    assert await second is False
    assert first.cancelled()


def test_on_done_callbacks() -> None:
    seen: list[tuple[str, bool]] = []
    c = Capture(10)
    c.on_done(lambda cap: seen.append(("a", cap.complete)))
    c.on_done(lambda cap: seen.append(("b", cap.complete)))
    c.done(True)
    c.on_done(lambda cap: seen.append(("late", cap.complete)))  # runs at once
    assert seen == [("a", True), ("b", True), ("late", True)]


brotli = importlib.import_module("brotli")  # untyped; installed with the test extras
DOC = b'{"hello": "world", "n": [1, 2, 3]}' * 20


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper: what some servers send despite RFC 9110."""
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(DOC)),
        ("x-gzip", gzip.compress(DOC)),
        ("GZIP", gzip.compress(DOC)),
        ("deflate", zlib.compress(DOC)),
        ("deflate", raw_deflate(DOC)),
        ("br", brotli.compress(DOC)),
        ("identity", DOC),
        ("", DOC),
        ("gzip, br", brotli.compress(gzip.compress(DOC))),
        ("gzip", gzip.compress(DOC[:100]) + gzip.compress(DOC[100:])),  # two gzip members
    ],
)
def test_decode(encoding: str, data: bytes) -> None:
    assert decode(data, encoding, 10_000) == DOC


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(b"\0" * 10_000_000)),
        ("deflate", zlib.compress(b"\0" * 10_000_000)),
        ("br", brotli.compress(b"\0" * 10_000_000)),
    ],
)
def test_decode_stops_at_the_limit(encoding: str, data: bytes) -> None:
    assert len(data) < 20_000  # a small bomb
    assert decode(data, encoding, 1 << 20) is None


@pytest.mark.parametrize(
    ("encoding", "data", "message"),
    [
        ("compress", b"x", "unsupported Content-Encoding 'compress'"),
        ("gzip", b"not gzip", "incorrect header check|Error -3"),
        ("gzip", gzip.compress(DOC)[:-20], "ends early"),
        ("br", b"\xff\xff not brotli", "brotli"),
        ("br", brotli.compress(DOC)[:-3], "brotli"),
    ],
)
def test_decode_failures(encoding: str, data: bytes, message: str) -> None:
    with pytest.raises(Undecodable, match=message):
        decode(data, encoding, 10_000)
