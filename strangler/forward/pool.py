"""One pooled client per upstream, and failures mapped to ``ForwardError(stage, kind)``.

Each upstream gets its own ``aiohttp.ClientSession`` and connector: keep-alive
connections, a cap on connections, the upstream's timeouts, no cookie jar (the proxy
must never keep a client's cookies), no automatic decompression (compressed bodies
pass byte for byte) and no redirect following (the client sees the upstream's 3xx).

A reload may change an upstream's URL or timeouts: ``Forwarder.reconcile`` builds pools
for the new upstream definitions and retires the old ones only once the requests that
still use them have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from strangler.config.model import Upstream
from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage

# Headers aiohttp's client would add on its own; a transparent proxy adds none of them.
_SKIP_AUTO: Final = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
Body = bytes | AsyncIterable[bytes] | None


class UpstreamPool:
    """The connection pool for one upstream definition."""

    __slots__ = ("_idle", "base", "inflight", "session", "timeout", "upstream")

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        url = URL(upstream.url)
        # Requests are sent as base + the client's raw path and query, never re-encoded.
        self.base = str(url.origin()) + url.raw_path.rstrip("/")
        t = upstream.timeouts
        self.timeout = aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.read)
        connector = aiohttp.TCPConnector(
            limit=upstream.max_connections,
            limit_per_host=0,
            ttl_dns_cache=60,
            keepalive_timeout=30.0,
            enable_cleanup_closed=False,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=self.timeout,
            skip_auto_headers=_SKIP_AUTO,
            raise_for_status=False,
            trust_env=False,
        )
        self.inflight = 0
        self._idle: asyncio.Event | None = None

    def url_for(self, raw_path_qs: str) -> URL:
        return URL(self.base + raw_path_qs, encoded=True)

    def done(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def retire(self, grace: float) -> None:
        """Close once no request uses this pool any more (or after ``grace`` seconds)."""
        if self.inflight:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        await self.session.close()

    async def send(
        self,
        method: str,
        raw_path_qs: str,
        headers: CIMultiDict[str],
        body: Body,
        *,
        retry_stale: bool,
    ) -> aiohttp.ClientResponse:
        """Send the request and return once the response head has arrived.

        The caller owns the response: it must ``release()`` it (``iter_body`` does).
        Raises ``ForwardError`` with the stage the exchange reached. ``retry_stale``:
        an idempotent request without a body is re-sent once when a kept-alive
        connection turns out to have been closed by the upstream (a race every pool
        has), never when the body was streamed.
        """
        name = self.upstream.name
        url = self.url_for(raw_path_qs)
        for attempt in (0, 1):
            try:
                return await self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=None,
                    chunked=None,
                )
            except aiohttp.ServerDisconnectedError as e:
                if attempt == 0 and retry_stale and method in _IDEMPOTENT:
                    continue
                raise ForwardError(
                    name, ForwardStage.RESPONSE_HEADERS, ForwardErrorKind.RESET, str(e)
                ) from e
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise classify(name, e, headers_seen=False) from e
        raise AssertionError("unreachable")  # pragma: no cover


def classify(upstream: str, e: BaseException, *, headers_seen: bool) -> ForwardError:
    """Map an aiohttp/OS exception to a ``ForwardError`` with stage and kind."""
    body = ForwardStage.RESPONSE_BODY
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return ForwardError(upstream, ForwardStage.CONNECT, ForwardErrorKind.TIMEOUT, "connect")
    if isinstance(e, aiohttp.ClientConnectorError):
        reason = str(e.os_error)
        return ForwardError(upstream, ForwardStage.CONNECT, ForwardErrorKind.REFUSED, reason)
    stage = body if headers_seen else ForwardStage.RESPONSE_HEADERS
    if isinstance(e, TimeoutError | aiohttp.ServerTimeoutError):
        return ForwardError(upstream, stage, ForwardErrorKind.TIMEOUT, "read")
    if isinstance(e, aiohttp.ClientResponseError):  # malformed status line or headers
        return ForwardError(upstream, stage, ForwardErrorKind.PROTOCOL, e.message)
    if isinstance(e, aiohttp.ClientPayloadError):
        return ForwardError(upstream, body, ForwardErrorKind.PROTOCOL, str(e))
    return ForwardError(upstream, stage, ForwardErrorKind.RESET, str(e) or type(e).__name__)


async def iter_body(pool: UpstreamPool, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives, chunk by chunk; releases the response at the end.

    Raises ``ForwardError(stage=RESPONSE_BODY)`` when the upstream fails mid-body.
    """
    content = resp.content
    try:
        while True:
            try:
                chunk = await content.readany()
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                raise classify(pool.upstream.name, e, headers_seen=True) from e
            if not chunk:
                return
            yield chunk
    finally:
        resp.release()


class Forwarder:
    """Every upstream's pool. Owned by the server; closed on shutdown."""

    __slots__ = ("_pools", "_retiring")

    def __init__(self) -> None:
        self._pools: dict[Upstream, UpstreamPool] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def pool(self, upstream: Upstream) -> UpstreamPool:
        pool = self._pools.get(upstream)
        if pool is None:
            pool = self._pools[upstream] = UpstreamPool(upstream)
        return pool

    def reconcile(self, upstreams: Iterable[Upstream], grace: float) -> None:
        """Keep pools for ``upstreams``, create missing ones, retire the rest in the
        background once their in-flight requests finish."""
        wanted = set(upstreams)
        for up in wanted:
            self.pool(up)
        for up in [u for u in self._pools if u not in wanted]:
            old = self._pools.pop(up)
            task = asyncio.get_running_loop().create_task(
                old.retire(grace), name=f"retire-pool-{up.name}"
            )
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(p.session.close() for p in pools))
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
