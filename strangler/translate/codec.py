"""Body bytes in and out of their wire form: Content-Encoding and charset.

One job: give the body transforms plain bytes and text, and put the result back in
the form the headers promise. Pure functions, no I/O.

- ``codings(headers)``: the ``Content-Encoding`` list, in the order it was applied
  (``identity`` left out, names lower-case).
- ``decode(body, codings, limit)``: undo them (last applied first). ``gzip`` (also
  ``x-gzip``, several members), ``deflate`` (zlib-wrapped as RFC 9110 says, or raw,
  as some servers send it) and ``br``. The output is capped: more than ``limit``
  bytes raises ``TooLarge`` without inflating further (a zip bomb costs ``limit``).
- ``encode(body, codings)``: apply them again (gzip with mtime 0, so the same body
  gives the same bytes; brotli at quality 5, a hot-path setting).
- ``charset(content_type)`` / ``is_json(content_type)``: what the ``Content-Type``
  says; an unknown charset raises ``CodecError``.

``br`` needs the ``brotli`` package; without it a ``br`` body raises ``CodecError``.

>>> body = encode(b'{"a": 1}', ("gzip",))
>>> decode(body, ("gzip",), limit=100)
b'{"a": 1}'
>>> charset("application/json; charset=ISO-8859-1"), is_json("application/problem+json")
('iso8859-1', True)
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import zlib
from collections.abc import Sequence
from typing import Final, Protocol, cast

from multidict import MultiMapping, istr

__all__ = [
    "CODINGS",
    "CodecError",
    "TooLarge",
    "charset",
    "codings",
    "decode",
    "encode",
    "is_json",
    "media_type",
]

CONTENT_ENCODING: Final = istr("Content-Encoding")
CONTENT_TYPE: Final = istr("Content-Type")

CODINGS: Final = ("gzip", "deflate", "br")
"""The content codings a body transform can read and write."""

_ALIASES: Final = {"x-gzip": "gzip"}
_BROTLI_QUALITY: Final = 5
_CHUNK: Final = 64 * 1024


class CodecError(ValueError):
    """A body that cannot be decoded or encoded; ``str()`` says why, for a human."""


class TooLarge(CodecError):
    """A decoded body over the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the decoded body is larger than {limit} bytes")
        self.limit = limit


class _Brotli(Protocol):
    """The little of the ``brotli`` module used here (it ships no type hints)."""

    error: type[Exception]

    def compress(self, data: bytes, quality: int = ...) -> bytes: ...

    def Decompressor(self) -> _BrotliDecompressor: ...


class _BrotliDecompressor(Protocol):
    def process(self, data: bytes, output_buffer_limit: int = ...) -> bytes: ...

    def is_finished(self) -> bool: ...

    def can_accept_more_data(self) -> bool: ...


def _brotli() -> _Brotli:
    try:
        return cast(_Brotli, importlib.import_module("brotli"))
    except ImportError:
        raise CodecError("Content-Encoding br needs the 'brotli' package") from None


def codings(headers: MultiMapping[str]) -> tuple[str, ...]:
    """The content codings of a message, in the order they were applied.

    >>> from multidict import CIMultiDict
    >>> codings(CIMultiDict({"Content-Encoding": "identity, GZIP, br"}))
    ('gzip', 'br')
    """
    found: list[str] = []
    for value in headers.getall(CONTENT_ENCODING, ()):
        for token in value.split(","):
            name = token.strip().lower()
            if name and name != "identity":
                found.append(_ALIASES.get(name, name))
    return tuple(found)


def decode(body: bytes, applied: Sequence[str], limit: int) -> bytes:
    """``body`` without its content codings; raises ``CodecError`` or ``TooLarge``."""
    for name in reversed(applied):
        if name == "gzip":
            body = _inflate(body, zlib.MAX_WBITS | 16, limit, name)
        elif name == "deflate":
            try:
                body = _inflate(body, zlib.MAX_WBITS, limit, name)
            except TooLarge:
                raise
            except CodecError:
                body = _inflate(body, -zlib.MAX_WBITS, limit, name)  # raw deflate
        elif name == "br":
            body = _unbrotli(body, limit)
        else:
            raise CodecError(
                f"cannot decode Content-Encoding {name!r} (known: {', '.join(CODINGS)})"
            )
    return body


def encode(body: bytes, applied: Sequence[str]) -> bytes:
    """``body`` with the content codings applied in order; raises ``CodecError``."""
    for name in applied:
        if name == "gzip":
            body = gzip.compress(body, mtime=0)
        elif name == "deflate":
            body = zlib.compress(body)
        elif name == "br":
            body = _brotli().compress(body, quality=_BROTLI_QUALITY)
        else:
            raise CodecError(
                f"cannot encode Content-Encoding {name!r} (known: {', '.join(CODINGS)})"
            )
    return body


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    """zlib-family decoding, capped at ``limit`` bytes of output; gzip may have members."""
    out = bytearray()
    rest = data
    while True:
        d = zlib.decompressobj(wbits)
        try:
            chunk = d.decompress(rest, limit + 1 - len(out))
            out += chunk
            if len(out) > limit or d.unconsumed_tail:
                raise TooLarge(limit)
            out += d.flush()
        except zlib.error as err:
            raise CodecError(f"the body is not valid {name}: {err}") from None
        if len(out) > limit:
            raise TooLarge(limit)
        if not d.eof:
            raise CodecError(f"the body is not valid {name}: it ends early")
        rest = d.unused_data
        if not rest or wbits & 16 == 0:  # only gzip streams may hold several members
            return bytes(out)


def _unbrotli(data: bytes, limit: int) -> bytes:
    brotli = _brotli()
    d = brotli.Decompressor()
    try:
        out = d.process(data, output_buffer_limit=limit + 1)
        if len(out) > limit:
            raise TooLarge(limit)
        if not d.is_finished():
            # Either more output is waiting (over the limit) or the input ended early.
            more = d.process(b"", output_buffer_limit=1) if not d.can_accept_more_data() else b""
            if more:
                raise TooLarge(limit)
            raise CodecError("the body is not valid br: it ends early")
    except brotli.error as err:
        raise CodecError(f"the body is not valid br: {err}") from None
    return out


def media_type(content_type: str | None) -> str:
    """The lower-case ``type/subtype`` of a ``Content-Type`` (``""`` when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """``application/json``, ``*/*+json`` and the like; an absent type counts as JSON."""
    kind = media_type(content_type)
    if not kind:
        return True
    subtype = kind.partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter as a Python codec name, or ``None``.

    Raises ``CodecError`` for a charset Python does not know.
    """
    if not content_type or ";" not in content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, eq, value = param.partition("=")
        if eq and key.strip().lower() == "charset":
            name = value.strip().strip('"').strip()
            try:
                return codecs.lookup(name).name
            except LookupError:
                raise CodecError(f"unknown charset {name!r} in Content-Type") from None
    return None
