"""A bounded tee of one message body, and decoding a captured body for comparison.

``Capture(limit)`` sits beside a body that is being streamed to someone else (the
primary's answer on its way to the client, or the client's request body on its way
upstream). The streaming code calls ``feed(chunk)`` for each chunk and ``done(complete)``
once at the end; the shadow job awaits ``wait()``. Guarantees:

- ``feed`` never awaits, never blocks and never fails: the stream it sits beside is
  never slowed down (no back-pressure from the shadow side);
- at most ``limit`` bytes are kept: the first chunk that would pass the limit marks
  the capture ``truncated`` and frees what was kept; every later ``feed`` is O(1);
  ``bytes`` chunks are kept by reference (immutable), other buffers are copied;
- ``done`` is idempotent (the first call wins), so the streaming code may call it in a
  ``finally`` after having called it already;
- a response capture also records the head (``head(status, headers)``).

>>> c = Capture(limit=8)
>>> c.feed(b"abc"); c.feed(b"def"); c.done(True)
>>> c.body, c.truncated, c.complete
(b'abcdef', False, True)
>>> c = Capture(limit=4)
>>> c.feed(b"abc"); c.feed(b"def"); c.done(True)
>>> c.body, c.truncated, c.seen
(None, True, 6)
"""

from __future__ import annotations

import asyncio
import importlib
import zlib
from collections.abc import Callable
from typing import Final, Protocol, cast

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Capture", "Undecodable", "decode"]

_Headers = CIMultiDict[str] | CIMultiDictProxy[str]
_EMPTY: Final[CIMultiDictProxy[str]] = CIMultiDictProxy(CIMultiDict())


class Capture:
    """A bounded copy of one body; see the module docstring."""

    __slots__ = (
        "_callbacks", "_parts", "_size", "_waiter", "complete", "finished", "headers", "limit",
        "seen", "status", "truncated",
    )  # fmt: skip

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.seen = 0  # every byte fed, kept or not
        self.truncated = False
        self.finished = False
        self.complete = False
        self.status = 0  # a response capture: set by ``head``
        self.headers: _Headers = _EMPTY
        self._waiter: asyncio.Future[bool] | None = None
        self._callbacks: list[Callable[[Capture], None]] | None = None

    def head(self, status: int, headers: _Headers) -> None:
        """Record a response's status and headers (kept by reference, not copied)."""
        self.status = status
        self.headers = headers

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Keep ``chunk`` if the total stays within ``limit``; never blocks."""
        n = len(chunk)
        self.seen += n
        if self.truncated or self.finished:
            return
        size = self._size + n
        if size > self.limit:
            self.truncated = True
            self._parts = []
            self._size = 0
            return
        self._parts.append(chunk if type(chunk) is bytes else bytes(chunk))
        self._size = size

    def done(self, complete: bool) -> None:
        """The body ended: whole (``complete``) or cut short (failed, aborted, client
        gone). Wakes ``wait()`` and runs the ``on_done`` callbacks. Idempotent."""
        if self.finished:
            return
        self.finished = True
        self.complete = complete
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(complete)
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(self)

    def on_done(self, callback: Callable[[Capture], None]) -> None:
        """Call ``callback(self)`` when the body ends (at once if it already has)."""
        if self.finished:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    async def wait(self) -> bool:
        """Wait for ``done``; return whether the body was complete."""
        if self.finished:
            return self.complete
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._waiter)

    @property
    def body(self) -> bytes | None:
        """What was kept: the whole body unless ``truncated`` (then ``None``)."""
        if self.truncated:
            return None
        if len(self._parts) != 1:
            self._parts = [b"".join(self._parts)]
        return self._parts[0]


class Undecodable(ValueError):
    """A Content-Encoding that is unknown, or data that does not decode."""


class _BrotliDecompressor(Protocol):
    def process(self, data: bytes, output_buffer_limit: int = ...) -> bytes: ...
    def is_finished(self) -> bool: ...


def _brotli() -> _BrotliDecompressor:
    try:
        module = importlib.import_module("brotli")  # optional: pip install brotli
    except ImportError:
        raise Undecodable("Content-Encoding br needs the 'brotli' package") from None
    return cast(_BrotliDecompressor, module.Decompressor())


def decode(body: bytes, content_encoding: str, limit: int) -> bytes | None:
    """``body`` with its Content-Encoding undone (``"gzip"``, ``"deflate"``, ``"br"``,
    ``"identity"``, or a list like ``"gzip, br"``, undone last first).

    Returns ``None`` when the decoded body would be larger than ``limit`` (treated like a
    body too large to capture). Raises ``Undecodable`` for an unknown coding or bad
    data. Never allocates much more than ``limit`` bytes, whatever the ratio.

    >>> import gzip
    >>> decode(gzip.compress(b"hello"), "gzip", 100)
    b'hello'
    >>> decode(gzip.compress(b"x" * 1000), "gzip", 100) is None
    True
    """
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    data: bytes | None = body
    for coding in reversed(codings):
        if data is None:
            return None
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, limit)
        elif coding == "deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate anyway.
            wrapped = data
            try:
                data = _inflate(wrapped, zlib.MAX_WBITS, limit)
            except Undecodable:
                data = _inflate(wrapped, -zlib.MAX_WBITS, limit)
        elif coding == "br":
            data = _unbrotli(data, limit)
        else:
            raise Undecodable(f"unsupported Content-Encoding {coding!r}")
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes | None:
    out: list[bytes] = []
    size = 0
    while True:  # gzip allows several members one after the other
        d = zlib.decompressobj(wbits)
        try:
            chunk = d.decompress(data, limit + 1 - size)
        except zlib.error as e:
            raise Undecodable(str(e)) from None
        size += len(chunk)
        if size > limit or d.unconsumed_tail:
            return None
        out.append(chunk)
        if not d.eof:
            raise Undecodable("compressed data ends early")
        data = d.unused_data
        if not data or wbits <= 0 or not data.strip(b"\0"):
            return b"".join(out)


def _unbrotli(data: bytes, limit: int) -> bytes | None:
    d = _brotli()
    try:
        out = d.process(data, output_buffer_limit=limit + 1)
    except Exception as e:  # brotli.error, or TypeError from a brotli older than 1.1
        raise Undecodable(f"brotli: {e}") from None
    if len(out) > limit:
        return None
    if not d.is_finished():
        raise Undecodable("brotli data ends early")
    return out
