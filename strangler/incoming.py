"""What the request path needs of a listener: the request, its body, and a responder.

The steps of a route's chain (``strangler.pipeline``) never see aiohttp: they read a
``Request`` (the fields of the parsed request head, parsed once by the listener) and
answer through a ``Responder``. ``strangler.adapter`` makes aiohttp's
``web.BaseRequest`` into both; another listener (one on llhttp directly, say) provides
its own and drives the same chains.

Contract of a ``Responder`` (one per request, used by one step at a time):

- ``whole(status, reason, headers, body)``: the answer in one piece (head and body in
  one write when the listener can); ``answer(status, text, headers)``: one of
  strangler's own plain-text answers (an error, a refusal);
- or ``start(status, reason, headers)``, ``write(chunk)`` any number of times, ``end()``:
  a streamed answer, sent as it comes with the listener's flow control (``write``
  waits while the client's buffer is full);
- ``started``: whether any of the answer's head has gone out (a failure after that
  cannot become an error answer: the connection must be aborted);
- ``abort()``: cut the client's connection, so a truncated answer can never pass for a
  complete one;
- ``upgrade(pool, headers)``: hand an upgrade request (WebSocket) over to the listener's
  own relaying; returns the status answered and the bytes relayed.

Headers given to a responder are the exact headers to send (no ``Server``, ``Date`` or
``Content-Type`` added unless present), except for ``answer``, which adds
``Content-Type: text/plain; charset=utf-8`` (and a listener may add ``Date``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from strangler.forward.pool import UpstreamPool


class Body(Protocol):
    """The request body as the client sends it."""

    async def readany(self) -> bytes:
        """The next chunk as it arrives; ``b""`` at the end of the body."""
        ...

    async def send_continue(self) -> None:
        """Answer ``100 Continue`` (for a request that sent ``Expect: 100-continue``)."""
        ...


class Request(Protocol):
    """One parsed request head. Satisfies the router's ``RequestLike`` and the release
    decision's ``ReleaseRequest``."""

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str:
        """The target as sent (path and query, not decoded), in origin form."""
        ...

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        ...

    @property
    def host(self) -> str: ...

    @property
    def scheme(self) -> str: ...

    @property
    def remote(self) -> str | None: ...

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def query(self) -> Mapping[str, str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def body_exists(self) -> bool: ...

    @property
    def content_length(self) -> int | None: ...

    @property
    def expects_continue(self) -> bool:
        """``Expect: 100-continue``: the client waits for a go-ahead to send the body."""
        ...

    @property
    def upgrade(self) -> bool:
        """A WebSocket upgrade (``Upgrade: websocket`` with ``Connection: upgrade``)."""
        ...

    @property
    def body(self) -> Body: ...


class Responder(Protocol):
    """How a step answers the client (contract in the module docstring)."""

    @property
    def started(self) -> bool: ...

    def whole(
        self, status: int, reason: str | None, headers: CIMultiDict[str], body: bytes
    ) -> None: ...

    def answer(self, status: int, text: str, headers: Mapping[str, str]) -> None: ...

    async def start(self, status: int, reason: str | None, headers: CIMultiDict[str]) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...

    def abort(self) -> None: ...

    async def upgrade(self, pool: UpstreamPool, headers: CIMultiDict[str]) -> tuple[int, int]: ...
