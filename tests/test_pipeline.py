"""The proxy end to end: real upstreams on 127.0.0.1, a real proxy, a real client."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from tests.conftest import MakeProxy, Upstream


def cfg(legacy: Upstream, extra: str = "", *, legacy_options: str = "") -> str:
    """A config with ``legacy`` (``legacy_options``: e.g. ``timeout: {read: 1s}``)."""
    up = f"{{url: {legacy.url}, {legacy_options}}}" if legacy_options else legacy.url
    return f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {up}
{extra}
"""


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def test_unrouted_request_reaches_legacy_unchanged(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    url = proxy.url + "/a/b%2Fc?x=1&x=2&q=%C3%A9t%C3%A9&empty=&plus=a+b"
    async with client.put(
        URL(url, encoded=True), data=b"payload", headers={"X-Custom": "v"}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    seen = legacy.recorder.seen[0]
    assert seen.method == "PUT"
    assert seen.raw_path == "/a/b%2Fc?x=1&x=2&q=%C3%A9t%C3%A9&empty=&plus=a+b"
    assert seen.body == b"payload"
    assert legacy.recorder.header(0, "X-Custom") == ["v"]
    assert body["served_by"] == "legacy"
    assert resp.headers["X-Served-By"] == "legacy"


async def test_hop_by_hop_headers_are_stripped_both_ways(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    headers = {
        "Connection": "keep-alive, X-Private",
        "X-Private": "secret-hop",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic abc",
        "X-End": "kept",
    }
    async with client.get(proxy.url + "/h", headers=headers) as resp:
        assert resp.status == 200
    for name in ("X-Private", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert legacy.recorder.header(0, name) == [], name
    assert legacy.recorder.header(0, "X-End") == ["kept"]


async def test_forwarded_headers_replace_untrusted_ones(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(
        proxy.url + "/f", headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6"}
    ) as resp:
        assert resp.status == 200
    assert legacy.recorder.header(0, "X-Forwarded-For") == ["127.0.0.1"]
    assert legacy.recorder.header(0, "X-Forwarded-Proto") == ["http"]
    host = f"127.0.0.1:{proxy.server.proxy_port}"
    assert legacy.recorder.header(0, "X-Forwarded-Host") == [host]
    assert legacy.recorder.header(0, "Forwarded") == [f'for=127.0.0.1;proto=http;host="{host}"']
    assert legacy.recorder.header(0, "Host") == [host]  # preserved by default


async def test_forwarded_headers_append_for_trusted_peers(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, "forwarded: {trusted: [127.0.0.0/8]}"))
    async with client.get(
        proxy.url + "/f",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
    ) as resp:
        assert resp.status == 200
    assert legacy.recorder.header(0, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert legacy.recorder.header(0, "X-Forwarded-Proto") == ["https"]


async def test_forwarded_style_rfc7239_adds_one_header(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, "forwarded: {style: rfc7239}"))
    async with client.get(proxy.url + "/f") as resp:
        assert resp.status == 200
    assert legacy.recorder.header(0, "X-Forwarded-For") == []
    assert legacy.recorder.header(0, "Forwarded")[0].startswith("for=127.0.0.1;proto=http")


async def test_set_cookie_location_and_compressed_bodies_pass_untouched(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(proxy.url + "/cookies") as resp:
        assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
    async with client.get(proxy.url + "/redirect", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/somewhere/else?x=1"
    async with client.get(proxy.url + "/gzip", headers={"Accept-Encoding": "gzip"}) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Length"] == str(len(raw))
        assert gzip.decompress(raw) == b'{"hello": "world"}' * 100


@pytest.mark.parametrize("code", [204, 304, 404, 500, 503])
async def test_status_codes_pass_through(
    code: int, legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(proxy.url + f"/status/{code}") as resp:
        assert resp.status == code
        body = await resp.read()
    assert body == (b"" if code in (204, 304) else f"status {code}\n".encode())


async def test_head_has_no_body_but_keeps_length(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.head(legacy.url + "/status/200") as resp:
        length = resp.headers["Content-Length"]
    assert int(length) > 0
    async with client.head(proxy.url + "/status/200") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == length
        assert await resp.read() == b""


async def test_chunked_both_ways_streams(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    chunks = [b"x" * 10_000, b"y" * 20_000, b"z"]

    async def gen() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    async with client.post(proxy.url + "/upload", data=gen()) as resp:
        body = await resp.json()
    whole = b"".join(chunks)
    assert body["body_sha256"] == hashlib.sha256(whole).hexdigest()
    assert legacy.recorder.header(0, "Transfer-Encoding") == ["chunked"]
    async with client.get(proxy.url + "/stream?chunks=50&size=4096") as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        data = await resp.read()
    assert len(data) == 50 * 4096


async def test_expect_100_continue(legacy: Upstream, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(cfg(legacy))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    line = await reader.readline()
    assert line == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(b"hello")
    await writer.drain()
    status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    assert legacy.recorder.seen[0].body == b"hello"
    assert legacy.recorder.header(0, "Expect") == []


async def test_websocket_relay(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.ws_connect(proxy.url + "/ws", protocols=("chat",)) as ws:
        assert ws.protocol == "chat"
        await ws.send_str("hi")
        assert (await ws.receive()).data == "echo:hi"
        await ws.send_bytes(b"abc")
        assert (await ws.receive()).data == b"cba"
        await ws.send_str("close")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 4001


async def test_refused_upstream_is_502_naming_it(
    unused_tcp_port: int, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: http://127.0.0.1:{unused_tcp_port}
"""
    )
    async with client.get(proxy.url + "/x", headers={"X-Request-Id": "t-1"}) as resp:
        assert resp.status == 502
        assert await resp.text() == "upstream 'legacy' refused the connection (request id t-1)\n"
        assert resp.headers["Proxy-Status"] == (
            "strangler; error=connection_refused; details=\"upstream 'legacy'\""
        )
    m = proxy.server.metrics.registry
    labels = {"upstream": "legacy", "kind": "refused", "stage": "connect"}
    assert m.get_sample_value("strangler_upstream_errors_total", labels) == 1


async def test_reset_before_response_is_502(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(proxy.url + "/reset", headers={"X-Request-Id": "t-2"}) as resp:
        assert resp.status == 502
        assert await resp.text() == "upstream 'legacy' closed the connection (request id t-2)\n"
        assert resp.headers["Proxy-Status"].startswith("strangler; error=connection_terminated;")


async def test_timeout_is_504(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, legacy_options="timeout: {read: 200ms}"))
    async with client.get(proxy.url + "/hold", headers={"X-Request-Id": "t-3"}) as resp:
        assert resp.status == 504
        assert await resp.text() == "upstream 'legacy' timed out (request id t-3)\n"
        assert resp.headers["Proxy-Status"] == (
            "strangler; error=http_response_timeout; details=\"upstream 'legacy'\""
        )
    await asyncio.wait_for(legacy.recorder.cancelled.wait(), 5)


async def test_total_timeout_is_504_before_head_and_abort_after(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, legacy_options="timeout: {total: 300ms}"))
    async with client.get(proxy.url + "/hold", headers={"X-Request-Id": "t-4"}) as resp:
        assert resp.status == 504
        assert await resp.text() == "upstream 'legacy' timed out (request id t-4)\n"
        assert "error=http_response_timeout" in resp.headers["Proxy-Status"]
    # Bytes keep coming (no read timeout), but the whole exchange takes too long.
    async with client.get(proxy.url + "/drip?chunks=100&every=0.02") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    m = proxy.server.metrics.registry
    for stage in ("response_headers", "response_body"):
        labels = {"upstream": "legacy", "kind": "timeout", "stage": stage}
        assert m.get_sample_value("strangler_upstream_errors_total", labels) == 1


async def test_failure_mid_body_aborts_client_connection(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(proxy.url + "/partial") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_client_disconnect_cancels_upstream_request(
    legacy: Upstream, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(cfg(legacy))
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
    writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(legacy.recorder.arrived.wait(), 5)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(legacy.recorder.cancelled.wait(), 5)


async def test_body_limit_by_content_length_is_413_without_upstream(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, "limits: {max_body_bytes: 1kb}"))
    async with client.post(proxy.url + "/x", data=b"a" * 2000) as resp:
        assert resp.status == 413
    assert legacy.recorder.seen == []
    async with client.post(proxy.url + "/x", data=b"a" * 999) as resp:
        assert resp.status == 200


async def test_chunked_body_over_limit_is_413(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy, "limits: {max_body_bytes: 1kb}"))

    async def gen() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"b" * 500

    async with client.post(proxy.url + "/x", data=gen()) as resp:
        assert resp.status == 413


async def test_oversized_header_is_431_and_malformed_is_400(
    legacy: Upstream, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(cfg(legacy, "limits: {max_header_bytes: 1kb}"))
    for raw, want in (
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", b" 431 "),
        (b"GARBAGE\r\n\r\n", b" 400 "),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
        writer.write(raw)
        await writer.drain()
        status = await reader.readline()
        assert want in status, status
        writer.close()
        await writer.wait_closed()
    assert legacy.recorder.seen == []


async def test_route_sends_matching_requests_to_new_service(
    legacy: Upstream, newsvc: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        cfg(
            legacy,
            f"""  billing: {newsvc.url}
routes:
  - name: invoices
    owner: team-billing
    match: {{path: "/api/invoices/{{id:int}}", methods: [GET]}}
    to: billing
""",
        )
    )
    async with client.get(proxy.url + "/api/invoices/42") as resp:
        assert (await resp.json())["served_by"] == "new"
    async with client.get(proxy.url + "/api/invoices/abc") as resp:
        assert (await resp.json())["served_by"] == "legacy"
    async with client.post(proxy.url + "/api/invoices/42") as resp:
        assert (await resp.json())["served_by"] == "legacy"
    lines = proxy.access_lines()
    assert [(x["route"], x["backend"], x["status"]) for x in lines] == [
        ("invoices", "billing", 200),
        ("(unrouted)", "legacy", 200),
        ("(unrouted)", "legacy", 200),
    ]
    m = proxy.server.metrics.registry
    labels = {"route": "invoices", "upstream": "billing", "target": "new", "status_class": "2xx"}
    assert m.get_sample_value("strangler_requests_total", labels) == 1


async def test_access_log_never_contains_secrets(
    legacy: Upstream, make_proxy: MakeProxy, client: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(cfg(legacy))
    async with client.get(
        proxy.url + "/p?token=hunter2",
        headers={"Authorization": "Bearer hunter2", "Cookie": "session=hunter2"},
    ) as resp:
        assert resp.status == 200
    proxy.server.access_log.close()
    text = proxy.log.getvalue()
    assert "hunter2" not in text
    line = json.loads(text.splitlines()[0])
    assert line["path"] == "/p"
    assert set(line) == {
        "time", "method", "path", "route", "backend", "status", "bytes", "duration_ms", "client",
        "request_id",
    }  # fmt: skip
