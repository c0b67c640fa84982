"""Content-Encoding and charset: decoding is capped, truncation and junk are errors."""

from __future__ import annotations

import gzip
import importlib
import zlib

import pytest
from multidict import CIMultiDict

from strangler.translate import codec

brotli = importlib.import_module("brotli")  # untyped: no stubs

BOMB = b"\0" * (64 << 20)  # 64 MiB of zeros: each coding squeezes it to a few KiB


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(BOMB)),
        ("deflate", zlib.compress(BOMB)),
        ("br", brotli.compress(BOMB, quality=1)),
        ("gzip", gzip.compress(b"x" * 600) + gzip.compress(b"y" * 600)),  # members add up
    ],
)
def test_decoding_stops_at_the_limit(coding: str, data: bytes) -> None:
    with pytest.raises(codec.TooLarge, match="the decoded body is larger than 1000 bytes"):
        codec.decode(data, (coding,), limit=1000)


@pytest.mark.parametrize(
    ("coding", "data", "message"),
    [
        ("gzip", gzip.compress(b"hello world" * 10)[:-12], "not valid gzip: it ends early"),
        ("br", brotli.compress(b"hello world" * 100)[:-3], "the body is not valid br"),
        ("deflate", b"plain text", "the body is not valid deflate"),
        ("compress", b"x", "cannot decode Content-Encoding 'compress'"),
    ],
)  # fmt: skip
def test_bad_encodings(coding: str, data: bytes, message: str) -> None:
    with pytest.raises(codec.CodecError, match=message):
        codec.decode(data, (coding,), limit=1 << 20)


@pytest.mark.parametrize(
    "codings", [(), ("gzip",), ("deflate",), ("br",), ("gzip", "deflate", "br")]
)
def test_encode_then_decode(codings: tuple[str, ...]) -> None:
    data = '{"k": "Zoë"}'.encode() * 100
    encoded = codec.encode(data, codings)
    assert codec.decode(encoded, codings, limit=len(data)) == data
    assert codec.encode(data, codings) == encoded  # deterministic (gzip mtime 0)


def test_codings_and_content_types() -> None:
    headers = CIMultiDict([("Content-Encoding", "gzip"), ("content-encoding", " Identity , BR")])
    assert codec.codings(headers) == ("gzip", "br")
    assert codec.codings(CIMultiDict()) == ()
    assert codec.charset('application/json; Charset="UTF-8"') == "utf-8"
    assert codec.charset("application/json") is None
    assert codec.charset(None) is None
    with pytest.raises(codec.CodecError, match="unknown charset 'nope'"):
        codec.charset("text/plain; charset=nope")
    assert [codec.is_json(t) for t in ("application/json", "application/vnd.x+json; v=1",
                                       "TEXT/JSON", None, "text/html", "application/jsonx")] == [
        True, True, True, True, False, False]  # fmt: skip
