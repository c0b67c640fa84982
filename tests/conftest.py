"""Shared fixtures: real upstream servers on 127.0.0.1 and a real proxy in front of them.

``upstream`` apps record every request they get and set an ``asyncio.Event`` on each,
so tests wait on events, never on sleeps. ``make_proxy(yaml)`` starts a real
``ProxyServer`` (proxy and admin on ephemeral 127.0.0.1 ports) with a fresh metrics
registry, and stops it after the test.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from pytest_aiohttp import AiohttpServer

from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run the tests on uvloop, the loop ``strangler serve`` uses in production."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@dataclass
class Seen:
    """What an upstream received."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Recorder:
    name: str
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # /hold waits on it
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)  # a /hold was cancelled

    def header(self, i: int, name: str) -> list[str]:
        return [v for k, v in self.seen[i].headers if k.lower() == name.lower()]


RECORDER = web.AppKey("recorder", Recorder)


async def _echo(request: web.Request) -> web.StreamResponse:
    rec = request.app[RECORDER]
    body = await request.read()
    rec.seen.append(Seen(request.method, request.raw_path, list(request.headers.items()), body))
    rec.arrived.set()
    payload = {
        "served_by": rec.name,
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    return web.json_response(payload, headers={"X-Served-By": rec.name})


async def _stream(request: web.Request) -> web.StreamResponse:
    """``/stream?chunks=N&size=S``: N chunks of S bytes, chunked encoding."""
    n = int(request.query.get("chunks", "4"))
    size = int(request.query.get("size", "1024"))
    resp = web.StreamResponse(headers={"X-Served-By": request.app[RECORDER].name})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(bytes([65 + i % 26]) * size)
    await resp.write_eof()
    return resp


async def _hold(request: web.Request) -> web.StreamResponse:
    """Answers only once the test sets ``recorder.release``; records a cancellation."""
    rec = request.app[RECORDER]
    rec.seen.append(Seen(request.method, request.raw_path, list(request.headers.items()), b""))
    rec.arrived.set()
    try:
        await rec.release.wait()
    except asyncio.CancelledError:
        rec.cancelled.set()
        raise
    return web.Response(text="released")


async def _drip(request: web.Request) -> web.StreamResponse:
    """``/drip?chunks=N&every=S``: a deliberately slow upstream, one byte every S seconds."""
    n = int(request.query.get("chunks", "10"))
    every = float(request.query.get("every", "0.05"))
    resp = web.StreamResponse()
    await resp.prepare(request)
    for _ in range(n):
        await resp.write(b".")
        await asyncio.sleep(every)  # the slowness under test, not a wait for an event
    await resp.write_eof()
    return resp


async def _slow(request: web.Request) -> web.StreamResponse:
    """``/slow?ms=N``: answers after N ms (a slow but healthy upstream)."""
    await asyncio.sleep(int(request.query.get("ms", "100")) / 1000)  # the slowness under test
    return web.json_response({"served_by": request.app[RECORDER].name})


async def _partial(request: web.Request) -> web.StreamResponse:
    """Promises 1000 bytes, sends 10, then drops the connection."""
    resp = web.StreamResponse(headers={"Content-Length": "1000"})
    await resp.prepare(request)
    await resp.write(b"0123456789")
    assert request.transport is not None
    request.transport.abort()
    return resp


async def _reset(request: web.Request) -> web.StreamResponse:
    """Drops the connection without answering."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


async def _status(request: web.Request) -> web.StreamResponse:
    code = int(request.match_info["code"])
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}\n")


async def _cookies(request: web.Request) -> web.StreamResponse:
    resp = web.Response(text="cookies")
    resp.headers.add("Set-Cookie", "a=1; Path=/")
    resp.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
    return resp


async def _gzip(request: web.Request) -> web.StreamResponse:
    import gzip

    raw = gzip.compress(b'{"hello": "world"}' * 100)
    return web.Response(
        body=raw, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/somewhere/else?x=1")


async def _ws(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("chat",))
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close(code=4001, message=b"bye")
            else:
                await ws.send_str(f"echo:{msg.data}")
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


def build_upstream(name: str) -> web.Application:
    app = web.Application(client_max_size=1 << 30)
    app[RECORDER] = Recorder(name)
    app.router.add_get("/stream", _stream)
    app.router.add_route("*", "/hold", _hold)
    app.router.add_get("/partial", _partial)
    app.router.add_get("/drip", _drip)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/reset", _reset)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/cookies", _cookies)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/ws", _ws)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


@dataclass
class Upstream:
    url: str
    recorder: Recorder


@pytest.fixture
async def legacy(aiohttp_server: AiohttpServer) -> Upstream:
    app = build_upstream("legacy")
    server = await aiohttp_server(app)
    return Upstream(str(server.make_url("")).rstrip("/"), app[RECORDER])


@pytest.fixture
async def newsvc(aiohttp_server: AiohttpServer) -> Upstream:
    app = build_upstream("new")
    server = await aiohttp_server(app)
    return Upstream(str(server.make_url("")).rstrip("/"), app[RECORDER])


@dataclass
class RunningProxy:
    server: ProxyServer
    log: io.StringIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.proxy_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.server.admin_port}"

    def access_lines(self) -> list[dict[str, object]]:
        self.server.access_log.close()  # flush the writer thread
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


MakeProxy = Callable[..., Awaitable[RunningProxy]]

BASE_CONFIG = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy}
{extra}
"""


@pytest.fixture
async def make_proxy(tmp_path: Path) -> AsyncIterator[MakeProxy]:
    started: list[ProxyServer] = []

    async def make(text: str, **options: object) -> RunningProxy:
        config = load_config_text(text)
        log = io.StringIO()
        options.setdefault("state_dir", tmp_path / f"state-{len(started)}")
        server = ProxyServer(
            config,
            ServeOptions(config_path=None, **options),  # type: ignore[arg-type]
            metrics=Metrics(),
            access_stream=log,
        )
        await server.start()
        started.append(server)
        return RunningProxy(server, log)

    yield make
    for s in started:
        await s.stop()
