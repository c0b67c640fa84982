"""The experimental llhttp listener (``strangler.h1listen``, ``STRANGLER_LISTENER=llhttp``)
under the listener's own tests: the hostile-request table, the pipeline's end-to-end
tests (framing, 100-continue, HEAD, WebSocket, timeouts, limits, client disconnects).
They are the same test functions as for the aiohttp listener, collected again here with
the switch on; ``tests/integration/test_h1listen_clients.py`` does the same for slow
clients, the connection cap and large uploads."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from strangler.h1listen import LlhttpServer
from strangler.protocol import ProxyHTTPServer
from tests.conftest import BASE_CONFIG, MakeProxy, Upstream

# The same tests, with the llhttp listener (the autouse fixture below turns it on).
from tests.test_hostile_requests import (  # noqa: F401
    TIMEOUT,
    read_reply,
    test_absolute_form_with_a_base_path_upstream,
    test_head_sent_in_pieces_counts_as_a_whole,
    test_head_size_limit_is_configurable,
    test_hostile_request,
    test_own_error_answers_have_no_server_header,
    test_underscore_headers_setting,
)
from tests.test_pipeline import (  # noqa: F401
    client,
    test_access_log_never_contains_secrets,
    test_body_limit_by_content_length_is_413_without_upstream,
    test_chunked_body_over_limit_is_413,
    test_chunked_both_ways_streams,
    test_client_disconnect_cancels_upstream_request,
    test_expect_100_continue,
    test_failure_mid_body_aborts_client_connection,
    test_forwarded_headers_append_for_trusted_peers,
    test_forwarded_headers_replace_untrusted_ones,
    test_forwarded_style_rfc7239_adds_one_header,
    test_head_has_no_body_but_keeps_length,
    test_hop_by_hop_headers_are_stripped_both_ways,
    test_oversized_header_is_431_and_malformed_is_400,
    test_refused_upstream_is_502_naming_it,
    test_reset_before_response_is_502,
    test_route_sends_matching_requests_to_new_service,
    test_set_cookie_location_and_compressed_bodies_pass_untouched,
    test_status_codes_pass_through,
    test_timeout_is_504,
    test_total_timeout_is_504_before_head_and_abort_after,
    test_unrouted_request_reaches_legacy_unchanged,
    test_websocket_relay,
)


@pytest.fixture(autouse=True)
def llhttp_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_LISTENER", "llhttp")


def _listener(runner: web.ServerRunner | None) -> object:
    assert runner is not None
    return runner.server


async def test_the_switch_selects_the_llhttp_listener(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    assert isinstance(_listener(proxy.server._proxy_runner), LlhttpServer)


async def test_without_the_switch_the_listener_is_aiohttp(
    make_proxy: MakeProxy, legacy: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRANGLER_LISTENER")
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    server = _listener(proxy.server._proxy_runner)
    assert isinstance(server, ProxyHTTPServer)
    assert not isinstance(server, LlhttpServer)


async def _exchange(port: int, raw: bytes, *, until_close: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        async with asyncio.timeout(TIMEOUT):
            if until_close:
                return await reader.read(-1)
            first = await read_reply(reader)
            second = await read_reply(reader)
        assert first is not None
        assert second is not None
        return b"%d %d %b" % (first.status, second.status, second.body)
    finally:
        writer.close()


async def test_a_body_left_unread_after_413_is_dropped_and_the_connection_kept(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    proxy = await make_proxy(
        BASE_CONFIG.format(legacy=legacy.url, extra="limits: {max_body_bytes: 1kb}")
    )
    raw = (
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n"
        + b"a" * 4000
        # the next request on the same connection: its first byte is found
        + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    got = await _exchange(proxy.server.proxy_port, raw)
    assert got.startswith(b"413 200 ")
    assert [s.raw_path for s in legacy.recorder.seen] == ["/after"]


async def test_http_1_0_gets_a_streamed_answer_delimited_by_the_close(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    raw = b"GET /stream?chunks=3&size=5 HTTP/1.0\r\nHost: a\r\n\r\n"
    answer = await _exchange(proxy.server.proxy_port, raw, until_close=True)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()  # a 1.0 client cannot read chunks
    assert b"Connection: close" in head
    assert body == b"AAAAABBBBBCCCCC"


async def test_pipelined_requests_are_answered_in_order(
    make_proxy: MakeProxy, legacy: Upstream
) -> None:
    proxy = await make_proxy(BASE_CONFIG.format(legacy=legacy.url, extra=""))
    raw = (
        b"GET /stream?chunks=2&size=3 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /stream?chunks=1&size=4 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    got = await _exchange(proxy.server.proxy_port, raw)
    assert got == b"200 200 AAAA"
