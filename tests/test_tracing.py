"""OpenTelemetry traces end to end: a real OTLP/HTTP receiver (the collector protocol
decoded with opentelemetry-proto), a real proxy, real upstreams that record the
``traceparent`` they get. The proxy is stopped (drained) before the spans are read:
the drain flushes the exporter, so the receiver has every span by then, no waiting."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pytest_aiohttp import AiohttpServer

from strangler.cli import main
from strangler.config import load_config_text
from strangler.config.kinds import OTEL_MODULES
from strangler.errors import ConfigError
from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.otlp_support import Receiver, attrs, start_receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SHADOWED = (  # a route answered by legacy, every request mirrored to new
    "  - {name: search, owner: o, match: {path: /search}, to: legacy,\n"
    "     shadow: {to: new, percent: 100%, compare: {confirm: {enabled: false}}}}"
)


@dataclass(frozen=True, slots=True)
class Traced:
    """What a tracing test works with: the two upstreams, the OTLP receiver, the proxy
    factory and a client."""

    legacy: Upstream
    newsvc: Upstream
    receiver: Receiver
    make_proxy: MakeProxy
    client: aiohttp.ClientSession

    async def proxy(
        self,
        routes: str,
        *,
        new: str = "",
        sample: str = "100%",
        receiver: Receiver | None = None,
        extra: str = "",
    ) -> RunningProxy:
        """A proxy tracing to ``receiver`` (the test's own by default), with upstream
        ``new`` at that URL when given, then ``routes`` and ``extra`` config text."""
        otlp = (receiver or self.receiver).url
        return await self.make_proxy(
            f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {self.legacy.url}
  {f"new: {new}" if new else ""}
tracing: {{otlp: {otlp}, sample: {sample}, service_name: edge}}
routes:
{routes}
"""
            + extra
        )

    async def get(
        self, proxy: RunningProxy, path: str, headers: Mapping[str, str] | None = None
    ) -> int:
        async with self.client.get(proxy.url + path, headers=headers or {}) as resp:
            await resp.read()
            return resp.status


@pytest.fixture
async def traced(
    legacy: Upstream, newsvc: Upstream, aiohttp_server: AiohttpServer, make_proxy: MakeProxy
) -> AsyncIterator[Traced]:
    receiver = await start_receiver(aiohttp_server)
    async with aiohttp.ClientSession() as client:
        yield Traced(legacy, newsvc, receiver, make_proxy, client)


def parse(traceparent: str) -> tuple[str, str, bool]:
    """Trace id, parent span id, sampled (other flags, like Level 2's random, aside)."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 1)


async def test_request_span_continues_the_client_trace_and_the_upstream_gets_the_child(
    traced: Traced,
) -> None:
    routes = "  - {name: invoices, owner: billing-team, match: {path_prefix: /inv}, to: new}"
    proxy = await traced.proxy(routes, new=traced.newsvc.url)
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await traced.get(proxy, "/inv/1", {"traceparent": parent}) == 200
    await proxy.server.stop()  # the drain flushes the exporter

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    (upstream_call,) = traced.receiver.of_kind(Span.SPAN_KIND_CLIENT)
    assert traced.receiver.services == {"edge"}
    assert server.trace_id.hex() == CLIENT_TRACE
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert server.name == "GET invoices"
    assert attrs(server) == {
        "http.request.method": "GET",
        "url.path": "/inv/1",
        "http.response.status_code": 200,
        "strangler.route": "invoices",
        "strangler.owner": "billing-team",
        "strangler.upstream": "new",
        "strangler.target": "new",
        "strangler.decision": "primary",
        "strangler.fallback": False,
        "strangler.translated": False,
    }
    assert upstream_call.trace_id == server.trace_id
    assert upstream_call.parent_span_id == server.span_id
    assert attrs(upstream_call)["strangler.upstream"] == "new"
    assert attrs(upstream_call)["http.response.status_code"] == 200
    # The upstream continues the trace under the proxy's upstream call, not the client.
    (sent,) = traced.newsvc.recorder.header(0, "traceparent")
    assert parse(sent) == (CLIENT_TRACE, upstream_call.span_id.hex(), True)
    assert traced.legacy.recorder.seen == []


async def test_a_request_without_traceparent_starts_a_trace(traced: Traced) -> None:
    proxy = await traced.proxy("  []")
    assert await traced.get(proxy, "/a") == 200
    await proxy.server.stop()

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    (upstream_call,) = traced.receiver.of_kind(Span.SPAN_KIND_CLIENT)
    assert server.parent_span_id == b""
    assert server.name == "GET (unrouted)"
    assert attrs(server)["strangler.upstream"] == "legacy"
    assert attrs(server)["strangler.target"] == "legacy"
    (sent,) = traced.legacy.recorder.header(0, "traceparent")
    assert parse(sent) == (server.trace_id.hex(), upstream_call.span_id.hex(), True)


async def test_the_release_decision_and_a_server_error_are_on_the_span(traced: Traced) -> None:
    routes = (
        "  - {name: orders, owner: o, match: {path_prefix: /status}, to: legacy,\n"
        "     canary: {to: new, percent: 100%}, fallback: false}"
    )
    proxy = await traced.proxy(routes, new=traced.newsvc.url)
    assert await traced.get(proxy, "/status/503") == 503
    await proxy.server.stop()

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    (call,) = traced.receiver.of_kind(Span.SPAN_KIND_CLIENT)
    assert attrs(server)["strangler.decision"] == "canary"
    assert attrs(server)["strangler.upstream"] == "new"
    assert attrs(server)["strangler.fallback"] is False
    assert attrs(server)["http.response.status_code"] == 503
    assert server.status.code == server.status.STATUS_CODE_ERROR
    assert call.status.code == call.status.STATUS_CODE_ERROR


async def test_a_fallback_is_two_upstream_calls_under_one_request_span(
    traced: Traced, unused_tcp_port: int
) -> None:
    routes = "  - {name: moved, owner: o, match: {path_prefix: /m}, to: new}"
    dead = f"http://127.0.0.1:{unused_tcp_port}"  # nothing listens: refused
    proxy = await traced.proxy(routes, new=dead)
    assert await traced.get(proxy, "/m") == 200
    await proxy.server.stop()

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    calls = sorted(
        traced.receiver.of_kind(Span.SPAN_KIND_CLIENT), key=lambda s: s.start_time_unix_nano
    )
    assert [attrs(c)["strangler.upstream"] for c in calls] == ["new", "legacy"]
    assert all(c.parent_span_id == server.span_id for c in calls)
    assert attrs(calls[0])["error.type"] == "refused"
    assert calls[0].status.code == calls[0].status.STATUS_CODE_ERROR
    assert attrs(server)["strangler.decision"] == "primary"
    assert attrs(server)["strangler.fallback"] is True
    assert attrs(server)["strangler.upstream"] == "legacy"


async def test_a_translated_route_says_so_on_its_span(traced: Traced) -> None:
    routes = (
        "  - {name: customers, owner: crm, match: {path: /c}, to: new,\n"
        "     translate: {request: [{headers: {set: {X-Api-Version: '2'}}}]}}"
    )
    proxy = await traced.proxy(routes, new=traced.newsvc.url)
    assert await traced.get(proxy, "/c") == 200
    assert await traced.get(proxy, "/other") == 200
    await proxy.server.stop()

    spans = {attrs(s)["strangler.route"]: s for s in traced.receiver.of_kind(Span.SPAN_KIND_SERVER)}
    assert attrs(spans["customers"])["strangler.translated"] is True
    assert attrs(spans["(unrouted)"])["strangler.translated"] is False
    # The translated request carries the proxy's traceparent too.
    (call,) = [
        c
        for c in traced.receiver.of_kind(Span.SPAN_KIND_CLIENT)
        if c.parent_span_id == spans["customers"].span_id
    ]
    assert traced.newsvc.recorder.header(0, "X-Api-Version") == ["2"]
    assert parse(traced.newsvc.recorder.header(0, "traceparent")[0])[1] == call.span_id.hex()


async def test_a_shadow_request_is_its_own_trace_linked_to_the_primary(traced: Traced) -> None:
    proxy = await traced.proxy(SHADOWED, new=traced.newsvc.url)
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await traced.get(proxy, "/search", {"traceparent": parent}) == 200
    await proxy.server.stop()  # the drain waits for the shadow job, then flushes

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    (shadow,) = traced.receiver.of_kind(Span.SPAN_KIND_INTERNAL)
    assert attrs(server)["strangler.shadow"] is True
    assert shadow.name == "shadow search"
    assert shadow.trace_id != server.trace_id
    assert shadow.parent_span_id == b""
    (link,) = shadow.links
    assert (link.trace_id, link.span_id) == (server.trace_id, server.span_id)
    assert attrs(shadow)["strangler.shadow.outcome"] == "mismatch"  # served_by differs
    by_upstream = {
        attrs(c)["strangler.upstream"]: c for c in traced.receiver.of_kind(Span.SPAN_KIND_CLIENT)
    }
    assert by_upstream["legacy"].parent_span_id == server.span_id
    assert by_upstream["new"].parent_span_id == shadow.span_id
    (to_shadow,) = traced.newsvc.recorder.header(0, "traceparent")
    assert parse(to_shadow)[:2] == (shadow.trace_id.hex(), by_upstream["new"].span_id.hex())


async def test_a_shadow_is_recorded_exactly_when_its_request_is(traced: Traced) -> None:
    # 100% for new traces, but the clients decide for their own traces.
    proxy = await traced.proxy(SHADOWED, new=traced.newsvc.url)
    unsampled = f"00-{CLIENT_TRACE[::-1]}-{CLIENT_SPAN}-00"
    assert await traced.get(proxy, "/search", {"traceparent": unsampled}) == 200
    sampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await traced.get(proxy, "/search", {"traceparent": sampled}) == 200
    await proxy.server.stop()

    assert len(traced.newsvc.recorder.seen) == 2  # both were mirrored
    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    (shadow,) = traced.receiver.of_kind(Span.SPAN_KIND_INTERNAL)
    assert server.trace_id.hex() == CLIENT_TRACE
    assert [link.span_id for link in shadow.links] == [server.span_id]


async def test_sample_0_records_no_new_trace_but_follows_a_sampled_client(traced: Traced) -> None:
    proxy = await traced.proxy("  []", sample="0%")
    assert await traced.get(proxy, "/new-trace") == 200
    # The upstream still gets a traceparent (not sampled): its own sampler decides.
    (unsampled,) = traced.legacy.recorder.header(0, "traceparent")
    assert parse(unsampled)[2] is False
    sampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await traced.get(proxy, "/client-sampled", {"traceparent": sampled}) == 200
    not_sampled = f"00-{CLIENT_TRACE[::-1]}-{CLIENT_SPAN}-00"
    assert await traced.get(proxy, "/client-not-sampled", {"traceparent": not_sampled}) == 200
    await proxy.server.stop()

    (server,) = traced.receiver.of_kind(Span.SPAN_KIND_SERVER)
    assert attrs(server)["url.path"] == "/client-sampled"
    assert len(traced.receiver.spans) == 2  # and its upstream call
    assert parse(traced.legacy.recorder.header(2, "traceparent")[0])[::2] == (
        CLIENT_TRACE[::-1],
        False,
    )


async def test_a_collector_that_is_down_does_not_hold_the_drain(
    traced: Traced, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    down = Receiver(url=f"http://127.0.0.1:{unused_tcp_port}")  # refused: the exporter retries
    proxy = await traced.proxy("  []", receiver=down, extra="drain: 1s\n")
    assert await traced.get(proxy, "/a") == 200
    started = time.monotonic()
    await proxy.server.stop()
    # The exporter's retries take about 7 s; the drain waits min(drain, 5 s) for them,
    # then stops the exporter: no thread goes on retrying (and logging) in the background.
    assert time.monotonic() - started < 4.0
    assert "tracing: spans not exported within 1s of the drain: dropped" in caplog.text
    for thread in threading.enumerate():
        if thread.name == "tracing-shutdown":
            thread.join(2.0)  # ending, not retrying for seconds more
            assert not thread.is_alive()


async def test_tracing_off_passes_the_client_traceparent_through_untouched(traced: Traced) -> None:
    proxy = await traced.make_proxy(
        f"listen: 127.0.0.1:0\nupstreams: {{legacy: {traced.legacy.url}}}\n"
    )
    assert proxy.server.tracing is None
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await traced.get(proxy, "/a", {"traceparent": parent}) == 200
    assert traced.legacy.recorder.header(0, "traceparent") == [parent]


# ---------------------------------------------------------------------------- config


def problems(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as err:
        load_config_text(text)
    return [(p.line, p.message, p.hint) for p in err.value.problems]


BASE = "upstreams: {legacy: http://127.0.0.1:8000}\n"


def test_tracing_settings_are_read_and_normalised() -> None:
    cfg = load_config_text(BASE + "tracing: {otlp: 'http://collector:4318/', sample: 10%}\n")
    assert cfg.tracing is not None
    assert cfg.tracing.endpoint == "http://collector:4318/v1/traces"
    assert cfg.tracing.sample == pytest.approx(0.1)
    assert cfg.tracing.service_name == "strangler"
    assert load_config_text(BASE).tracing is None


def test_tracing_problems_have_lines_and_hints() -> None:
    text = BASE + "tracing:\n  otlp: collector:4318\n  sample: 1\n  servce_name: edge\n"
    assert problems(text) == [
        (
            3,
            "tracing.otlp: URL 'collector:4318' must start with http:// or https://",
            "did you mean 'http://collector:4318'?",
        ),
        (
            4,
            "tracing.sample: 1 is ambiguous: 1% or a ratio (100%)? write 1% or 100%",
            "",
        ),
        (5, "unknown key 'servce_name' in tracing", "did you mean 'service_name'?"),
    ]
    assert problems(BASE + "tracing: {sample: 5%}\n") == [
        (2, "tracing is missing required key 'otlp'", "")
    ]


def _without_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine without the extra: the modules cannot be found."""
    for name in ("opentelemetry", *OTEL_MODULES):
        monkeypatch.setitem(sys.modules, name, None)


def test_tracing_without_the_extra_installed_is_a_clear_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_otel(monkeypatch)
    ((line, message, hint),) = problems(BASE + "tracing: {otlp: http://c:4318}\n")
    assert line == 2
    assert message.startswith("tracing is configured but the OpenTelemetry packages are not")
    assert hint == "pip install 'strangler[otel]', or remove tracing:"


def test_strangler_check_says_the_extra_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "strangler.yaml"
    path.write_text(BASE + "tracing: {otlp: http://c:4318}\n")
    _without_otel(monkeypatch)
    assert main(["check", str(path)]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert f"{path}:2" in text
    assert "pip install 'strangler[otel]'" in text
    assert "Traceback" not in text
