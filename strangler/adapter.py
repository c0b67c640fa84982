"""aiohttp's ``web.BaseRequest`` as a ``strangler.incoming.Request`` (and ``Body``), and
a ``Responder`` that answers through aiohttp: the listener of ``strangler.protocol``
drives the pipeline's chains through these.

The request's fields are aiohttp's own, read when a step asks (aiohttp computes most
of them once and caches them). The responder builds the ``web.StreamResponse`` the
handler returns: ``RelayedResponse`` for a whole answer (head and body in one write
after the handler returns), a prepared ``RelayedStreamResponse`` for a streamed one,
``ProxyAnswer`` for strangler's own, the ``WebSocketResponse`` of an upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, istr

from strangler.forward.pool import UpstreamPool
from strangler.forward.websocket import is_websocket_upgrade, relay_websocket
from strangler.protocol import ProxyAnswer, RelayedResponse, RelayedStreamResponse

_EXPECT: Final = istr("Expect")
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class AiohttpRequest:
    """``strangler.incoming.Request`` over one aiohttp request."""

    __slots__ = ("_r", "headers", "method", "raw_path")

    def __init__(self, request: web.BaseRequest) -> None:
        self._r = request
        self.method = request.method
        self.raw_path = request.raw_path
        self.headers: CIMultiDictProxy[str] = request.headers

    @property
    def path(self) -> str:
        return self._r.path

    @property
    def host(self) -> str:
        return self._r.host

    @property
    def scheme(self) -> str:
        return self._r.scheme

    @property
    def remote(self) -> str | None:
        return self._r.remote

    @property
    def query(self) -> Mapping[str, str]:
        return self._r.query

    @property
    def cookies(self) -> Mapping[str, str]:
        return self._r.cookies

    @property
    def body_exists(self) -> bool:
        return self._r.body_exists

    @property
    def content_length(self) -> int | None:
        return self._r.content_length

    @property
    def expects_continue(self) -> bool:
        return self.headers.get(_EXPECT, "").lower() == "100-continue"

    @property
    def upgrade(self) -> bool:
        return "Upgrade" in self.headers and is_websocket_upgrade(self._r)

    @property
    def body(self) -> AiohttpRequest:
        return self

    async def readany(self) -> bytes:
        return await self._r.content.readany()

    async def send_continue(self) -> None:
        await self._r.writer.write(_CONTINUE)


class AiohttpResponder:
    """``strangler.incoming.Responder`` over one aiohttp request; ``response`` is what
    the handler returns."""

    __slots__ = ("_r", "_stream", "response")

    def __init__(self, request: web.BaseRequest) -> None:
        self._r = request
        self._stream: web.StreamResponse | None = None
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        return self._stream is not None

    def whole(
        self, status: int, reason: str | None, headers: CIMultiDict[str], body: bytes
    ) -> None:
        resp = RelayedResponse(status=status, reason=reason, headers=headers)
        if body:
            resp.body = body
        self.response = resp

    def answer(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        resp = ProxyAnswer(status=status, text=text, content_type="text/plain")  # no Server
        resp.headers.extend(headers)
        self.response = resp

    async def start(self, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        stream = self.response = self._stream = RelayedStreamResponse(
            status=status, reason=reason, headers=headers
        )
        await stream.prepare(self._r)

    async def write(self, chunk: bytes) -> None:
        assert self._stream is not None
        await self._stream.write(chunk)

    async def end(self) -> None:
        assert self._stream is not None
        await self._stream.write_eof()

    def abort(self) -> None:
        if self._r.transport is not None:
            self._r.transport.abort()

    async def upgrade(self, pool: UpstreamPool, headers: CIMultiDict[str]) -> tuple[int, int]:
        ws, nbytes = await relay_websocket(self._r, pool, headers)
        self.response = ws
        return ws.status, nbytes
