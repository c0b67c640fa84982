"""Hostile requests against a real listener, over raw sockets: what the client gets back
and what the recording upstream may (or may not) receive.

Each case is raw request bytes → the statuses answered in order, whether the proxy
closes the connection after them, and a check on what reached the upstream (``None``:
nothing may reach it). The cases are the attacks of issue 10 part 2: a forged
``Forwarded`` element through ``Host``, absolute-form targets, CONNECT/TRACE, HTTP/0.9
and HTTP/2.0 request lines, unknown transfer codings, ``_`` header names, a head too
large in total, and garbage pipelined after a valid request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pytest
from multidict import CIMultiDict

from strangler.forward.headers import ForwardedFor
from tests.conftest import BASE_CONFIG, MakeProxy, RunningProxy, Seen, Upstream

TIMEOUT: Final = 5.0  # bound on one exchange: a hang fails the test, never waits forever


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def read_reply(reader: asyncio.StreamReader) -> Reply | None:
    """One response (Content-Length or chunked framing); ``None`` at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise AssertionError(f"truncated response head: {e.partial!r}") from e
        return None
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers = tuple((k, v) for k, _, v in (line.partition(": ") for line in lines))
    reply = Reply(int(status_line.split(" ", 2)[1]), headers, b"")
    if reply.values("Content-Length"):
        body = await reader.readexactly(int(reply.values("Content-Length")[0]))
    elif any("chunked" in v for v in reply.values("Transfer-Encoding")):
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            parts.append(await reader.readexactly(size))
            await reader.readuntil(b"\r\n")
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        body = b""
    return Reply(reply.status, headers, body)


async def exchange(proxy: RunningProxy, raw: bytes, count: int) -> tuple[list[Reply], bool]:
    """Send ``raw``; read ``count`` replies; then whether the proxy closed the
    connection (EOF) rather than kept it open for another request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
    try:
        async with asyncio.timeout(TIMEOUT):
            writer.write(raw)
            replies: list[Reply] = []
            for _ in range(count):
                reply = await read_reply(reader)
                assert reply is not None, f"connection closed after {replies}"
                replies.append(reply)
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.5) == b""
        except TimeoutError:
            closed = False  # still open: kept alive for the next request
        return replies, closed
    finally:
        writer.close()


def forwarded_elements(value: str) -> list[str]:
    """RFC 7239 elements: split on commas outside quoted strings."""
    out, current, quoted, escaped = [], "", False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(current.strip())
            current = ""
            continue
        current += ch
    out.append(current.strip())
    return out


def one_forwarded_element(seen: Seen) -> None:
    values = [v for k, v in seen.headers if k.lower() == "forwarded"]
    assert len(values) == 1
    (element,) = forwarded_elements(values[0])  # no element forged by the client
    assert element.startswith("for=127.0.0.1;proto=http;host=")
    assert element.count("for=") == 1 or '"' in element.split(";host=", 1)[1]


def head(first: str, *fields: str, body: bytes = b"") -> bytes:
    return ("\r\n".join((first, *fields)) + "\r\n\r\n").encode("latin-1") + body


UpstreamCheck = Callable[[list[Seen]], None] | None


@dataclass(frozen=True, slots=True)
class Case:
    raw: bytes
    statuses: tuple[int, ...]
    closed: bool  # the proxy closes the connection after the answers
    upstream: UpstreamCheck  # None: nothing may reach the upstream


def _seen_one(check: Callable[[Seen], None]) -> Callable[[list[Seen]], None]:
    def run(seen: list[Seen]) -> None:
        assert len(seen) == 1, seen
        check(seen[0])

    return run


def _header(seen: Seen, name: str) -> list[str]:
    return [v for k, v in seen.headers if k.lower() == name.lower()]


def _absolute(seen: Seen) -> None:
    assert seen.raw_path == "/x?a=%2F"
    assert _header(seen, "Host") == ["internal.example"]
    assert _header(seen, "X-Forwarded-Host") == ["internal.example"]
    one_forwarded_element(seen)


def _no_underscores(seen: Seen) -> None:
    assert _header(seen, "X-User") == ["alice"]
    assert not [k for k, _ in seen.headers if "_" in k]


def _body_is(seen: Seen, body: bytes) -> None:
    assert (seen.raw_path, seen.body) == ("/ok", body)


def _plain_get(seen: Seen) -> None:
    assert seen.raw_path == "/ok"
    one_forwarded_element(seen)


BIG_FIELDS: Final = tuple(f"X-Pad-{i}: {'p' * 1000}" for i in range(40))  # ~40 KiB head

CASES: Final = {
    "plain-request": Case(
        head("GET /ok HTTP/1.1", "Host: shop.example"), (200,), False, _seen_one(_plain_get)
    ),
    "host-forges-forwarded": Case(
        head("GET / HTTP/1.1", "Host: x, for=6.6.6.6"), (400,), True, None
    ),
    "host-with-quote": Case(head("GET / HTTP/1.1", 'Host: x"y'), (400,), True, None),
    "host-with-slash": Case(head("GET / HTTP/1.1", "Host: a/b"), (400,), True, None),
    # valid reg-names (RFC 3986 sub-delims), so forwarded, but quoted in Forwarded
    "host-comma-reg-name": Case(
        head("GET / HTTP/1.1", "Host: x,for=6.6.6.6"),
        (200,),
        False,
        _seen_one(one_forwarded_element),
    ),
    "host-semicolon-reg-name": Case(
        head("GET / HTTP/1.1", "Host: x;for=6.6.6.6"),
        (200,),
        False,
        _seen_one(one_forwarded_element),
    ),
    "duplicate-host": Case(head("GET / HTTP/1.1", "Host: a", "Host: b"), (400,), True, None),
    "missing-host": Case(head("GET / HTTP/1.1"), (400,), True, None),
    "absolute-form": Case(
        head("GET http://internal.example/x?a=%2F HTTP/1.1", "Host: public.example"),
        (200,),
        False,
        _seen_one(_absolute),
    ),
    "absolute-form-userinfo": Case(
        head("GET http://u:p@internal.example/x HTTP/1.1", "Host: public.example"),
        (400,),
        True,
        None,
    ),
    "connect": Case(
        head("CONNECT internal.example:443 HTTP/1.1", "Host: internal.example:443"),
        (405,),
        True,
        None,
    ),
    "trace": Case(
        head("TRACE / HTTP/1.1", "Host: a", "Authorization: Bearer s3cret", "Cookie: sid=s3cret"),
        (405,),
        True,
        None,
    ),
    "http-0.9": Case(b"GET /\r\n\r\n", (400,), True, None),
    "http-2.0-request-line": Case(head("GET / HTTP/2.0", "Host: a"), (505,), True, None),
    "transfer-coding-gzip-chunked": Case(
        head(
            "POST / HTTP/1.1",
            "Host: a",
            "Transfer-Encoding: gzip, chunked",
            body=b"5\r\nhello\r\n0\r\n\r\n",
        ),
        (501,),
        True,
        None,
    ),
    "underscore-header-dropped": Case(
        head("GET / HTTP/1.1", "Host: a", "X_User: admin", "X-User: alice"),
        (200,),
        False,
        _seen_one(_no_underscores),
    ),
    "head-over-32KiB": Case(head("GET / HTTP/1.1", "Host: a", *BIG_FIELDS), (431,), True, None),
    "content-length-and-chunked": Case(
        head(
            "POST / HTTP/1.1",
            "Host: a",
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        (400,),
        True,
        None,
    ),
    "space-before-colon": Case(head("GET / HTTP/1.1", "Host: a", "X-A : 1"), (400,), True, None),
    "obsolete-line-folding": Case(
        head("GET / HTTP/1.1", "Host: a", "X-A: 1", " folded"), (400,), True, None
    ),
    "garbage-pipelined-after-a-post": Case(
        head("POST /ok HTTP/1.1", "Host: a", "Content-Length: 5", body=b"hello")
        + b"GARBAGE GARBAGE\r\n\r\n",
        (200, 400),
        True,
        _seen_one(lambda seen: _body_is(seen, b"hello")),
    ),
    "garbage-pipelined-after-a-request": Case(
        head("GET /ok HTTP/1.1", "Host: a") + b"GARBAGE GARBAGE\r\n\r\n",
        (200, 400),
        True,
        _seen_one(_plain_get),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_hostile_request(make_proxy: MakeProxy, legacy: Upstream, case: Case) -> None:
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    replies, closed = await exchange(proxy, case.raw, len(case.statuses))
    assert tuple(r.status for r in replies) == case.statuses
    assert closed == case.closed
    for reply in replies:
        assert b"s3cret" not in reply.body
        if reply.status >= 400:  # the proxy's own answer
            assert reply.values("Server") == []  # never "Python/3.x aiohttp/..."
            assert reply.values("Proxy-Status") == ["strangler; error=http_request_error"]
        if reply.status == 405:
            assert "GET" in reply.values("Allow")[0]
    if case.upstream is None:
        assert legacy.recorder.seen == []
    else:
        case.upstream(legacy.recorder.seen)


async def test_absolute_form_with_a_base_path_upstream(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    """The target is made origin-form before the upstream's base path is prefixed:
    ``/base/x``, never ``/basehttp://...``."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=f"{legacy.url}/base", extra=""))
    raw = head("GET http://internal.example/x?q=1 HTTP/1.1", "Host: public.example")
    replies, _ = await exchange(proxy, raw, 1)
    assert replies[0].status == 200
    assert [s.raw_path for s in legacy.recorder.seen] == ["/base/x?q=1"]


@pytest.mark.parametrize(
    ("mode", "status", "forwarded"),
    [("keep", 200, ["admin"]), ("reject", 400, None)],
)
async def test_underscore_headers_setting(
    make_proxy: MakeProxy, legacy: Upstream, mode: str, status: int, forwarded: list[str] | None
) -> None:
    extra = f"limits: {{underscore_headers: {mode}}}"
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=extra))
    replies, _ = await exchange(proxy, head("GET / HTTP/1.1", "Host: a", "X_User: admin"), 1)
    assert replies[0].status == status
    if forwarded is None:
        assert legacy.recorder.seen == []
    else:
        assert _header(legacy.recorder.seen[0], "X_User") == forwarded


async def test_head_size_limit_is_configurable(make_proxy: MakeProxy, legacy: Upstream) -> None:
    extra = "limits: {max_head_bytes: 64KiB}"
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=extra))
    replies, _ = await exchange(proxy, head("GET / HTTP/1.1", "Host: a", *BIG_FIELDS), 1)
    assert replies[0].status == 200


async def test_head_sent_in_pieces_counts_as_a_whole(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    """A head over the limit is refused while it arrives (100 fields of 1 KiB, each
    within the per-line and per-count limits, and the head never finished)."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
    try:
        async with asyncio.timeout(TIMEOUT):
            answer = asyncio.ensure_future(read_reply(reader))
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
            for i in range(100):
                if answer.done():
                    break
                writer.write(f"X-Pad-{i}: {'p' * 1000}\r\n".encode())
                await writer.drain()
            reply = await answer
        assert reply is not None
        assert reply.status == 431
    finally:
        writer.close()
    assert legacy.recorder.seen == []


async def test_own_error_answers_have_no_server_header(make_proxy: MakeProxy) -> None:
    """The pipeline's own answers (here a 502: nothing listens upstream)."""
    proxy = await make_proxy(BASE_CONFIG.format(legacy="http://127.0.0.1:9", extra=""))
    replies, _ = await exchange(proxy, head("GET / HTTP/1.1", "Host: a"), 1)
    assert replies[0].status == 502
    assert replies[0].values("Server") == []


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    out, escaped = "", False
    for ch in value[1:-1]:
        if escaped or ch != "\\":
            out, escaped = out + ch, False
        else:
            escaped = True
    return out


@pytest.mark.parametrize(
    "host",
    [
        "shop.example",
        "shop.example:8080",
        "[::1]:80",
        "x, for=6.6.6.6",
        "x;for=6.6.6.6;by=evil",
        'x", for="6.6.6.6',
        'x\\", for=6.6.6.6',
        "x,for=6.6.6.6",
    ],
)
def test_forwarded_values_cannot_add_elements_or_pairs(host: str) -> None:
    """Whatever reaches ``ForwardedFor`` (a trusted peer's X-Forwarded-Host, say) stays
    one value of one element (RFC 7239 quoting)."""
    out: CIMultiDict[str] = CIMultiDict()
    ForwardedFor("203.0.113.7", "http", host, trusted=False).apply(out, CIMultiDict())
    (element,) = forwarded_elements(out["Forwarded"])
    prefix = "for=203.0.113.7;proto=http;host="
    assert element.startswith(prefix)
    assert _unquote(element.removeprefix(prefix)) == host
