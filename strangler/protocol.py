"""The client-facing HTTP/1.1 server: aiohttp's low-level server, with the answers a proxy
owes a client that sent something it cannot accept.

aiohttp answers every parse failure with a 400 and logs a traceback. A proxy should
say which limit was hit and keep its log readable under junk traffic:

- a header line over ``limits.max_header_bytes`` or more than ``limits.max_headers``
  headers → ``431 Request Header Fields Too Large``;
- any other malformed request → ``400 Bad Request`` with the parser's one-line reason;
- an unexpected error inside the handler → ``500`` with no traceback to the client
  (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

log = logging.getLogger("strangler.protocol")


def _too_large(exc: BaseException | None) -> bool:
    return isinstance(exc, LineTooLong) or (
        isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc)
    )


class _Handler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        if _too_large(exc):
            status, text = 431, "request header fields too large\n"
        elif isinstance(exc, HttpProcessingError) or status == 400:
            reason = (message or str(exc) or "malformed request").splitlines()[0]
            status, text = 400, f"bad request: {reason[:200]}\n"
        else:
            log.error("error handling %s %s", request.method, request.path, exc_info=exc)
            text = f"internal error in the proxy ({status})\n"
        if status != 500:
            log.info("rejected a request from %s: %s", request.remote, text.strip())
        resp = web.Response(status=status, text=text, content_type="text/plain")
        resp.force_close()
        return resp


class ProxyHTTPServer(web.Server):
    """``web.Server`` whose connections use the proxy's error answers."""

    def __call__(self) -> RequestHandler:
        kwargs: dict[str, Any] = self._kwargs
        return _Handler(self, loop=self._loop, **kwargs)


# Headers aiohttp adds to every response unless present. A proxy passes the
# upstream's answer as it is: what the upstream did not send, the client does not get.
_DEFAULTED: tuple[str, ...] = ("Content-Type", "Server", "Date")


class _Transparent:
    """Mixin: after aiohttp prepared the head, drop the headers it added on its own."""

    _upstream_had: frozenset[str]

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()  # type: ignore[misc]
        headers = self.headers  # type: ignore[attr-defined]
        for name in _DEFAULTED:
            if name not in self._upstream_had:
                headers.popall(name, None)


def _had(headers: CIMultiDict[str]) -> frozenset[str]:
    return frozenset(name for name in _DEFAULTED if name in headers)


class RelayedStreamResponse(_Transparent, web.StreamResponse):
    """A streamed upstream answer, without aiohttp's default headers."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._upstream_had = _had(headers)


class RelayedResponse(_Transparent, web.Response):
    """A fully buffered upstream answer (sent in one write), without aiohttp's defaults."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str]) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._upstream_had = _had(headers)
