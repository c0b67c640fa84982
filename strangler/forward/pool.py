"""The pools of every upstream, and aiohttp failures mapped to ``ForwardError``.

Each upstream gets an ``H1Pool`` (``h1.py``: keep-alive connections, a cap on
connections, the upstream's timeouts; bodies pass byte for byte, nothing is
decompressed, redirects reach the client) and, for WebSocket upgrades only, an
aiohttp session without a cookie jar.

A reload may change an upstream's URL or timeouts: ``Forwarder.reconcile`` builds pools
for the new upstream definitions and retires the old ones only once the requests that
still use them have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable
from typing import Final

import aiohttp
from yarl import URL

from strangler.config.model import Upstream
from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage
from strangler.forward.h1 import H1Pool
from strangler.tls import UpstreamSsl, follow_upstream, tls_error, upstream_ssl

# Headers aiohttp's client would add on its own; a transparent proxy adds none of them.
_SKIP_AUTO: Final = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


class UpstreamPool:
    """Everything the proxy holds for one upstream definition: the HTTP/1.1 keep-alive
    pool (``h1``) for ordinary exchanges, and an aiohttp session, made on first use,
    for WebSocket upgrades."""

    __slots__ = (
        "_idle", "_origin", "_session", "base", "files", "h1", "host_header", "inflight",
        "preserve_host", "tls", "upstream",
    )  # fmt: skip

    def __init__(self, upstream: Upstream, h1: Callable[..., H1Pool] = H1Pool) -> None:
        self.upstream = upstream
        url = URL(upstream.url)
        # Requests are sent as base path + the client's raw path and query, never re-encoded.
        self.base = url.raw_path.rstrip("/")
        t = upstream.timeouts
        self.tls = upstream_ssl(upstream)  # the one context of every connection to it
        self.h1 = h1(
            upstream.name,
            url.raw_host or "127.0.0.1",
            url.port or (443 if url.scheme == "https" else 80),
            limit=upstream.max_connections,
            connect_timeout=t.connect,
            read_timeout=t.read,
            tls=self.tls if url.scheme == "https" else None,
        )
        self._session: aiohttp.ClientSession | None = None
        self._origin = str(url.origin())
        self.preserve_host = upstream.host_header == "preserve"
        self.host_header = url.raw_authority  # Host when not preserving the client's
        self.inflight = 0
        self._idle: asyncio.Event | None = None
        # its tls files (ca, cert, key), followed as the listener's: None for http://
        self.files = follow_upstream(upstream, self.tls, self._adopt)

    def _adopt(self, tls: UpstreamSsl) -> None:
        self.tls = self.h1.tls = tls  # new connections use it, open ones keep theirs

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session for WebSocket upgrades (no cookies, no decompression)."""
        if self._session is None:
            t = self.upstream.timeouts
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=t.connect),
                skip_auto_headers=_SKIP_AUTO,
                trust_env=False,
            )
        return self._session

    def target(self, raw_path_qs: str) -> str:
        """The request target sent upstream: the upstream's base path + the client's."""
        return self.base + raw_path_qs

    def url_for(self, raw_path_qs: str) -> URL:
        return URL(self._origin + self.base + raw_path_qs, encoded=True)

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
        await self.close()

    async def close(self) -> None:
        if self.files is not None:
            await self.files.close()
        await self.h1.close()
        if self._session is not None:
            await self._session.close()


def classify(upstream: str, e: BaseException, *, headers_seen: bool) -> ForwardError:
    """Map an aiohttp/OS exception to a ``ForwardError`` with stage and kind."""
    body = ForwardStage.RESPONSE_BODY
    if isinstance(e, aiohttp.ClientSSLError):  # before ClientConnectorError, its base
        cause = (
            e.certificate_error
            if isinstance(e, aiohttp.ClientConnectorCertificateError)
            else e.os_error
        )
        if isinstance(cause, ssl.SSLError):
            return tls_error(upstream, cause)
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


class Forwarder:
    """Every upstream's pool. Owned by the server; closed on shutdown."""

    __slots__ = ("_h1", "_pools", "_retiring", "tls_watch")

    def __init__(self, h1: Callable[..., H1Pool] = H1Pool, *, tls_watch: float = 0.0) -> None:
        """``h1``: the connection pool class (tracing: one whose sends are spans);
        ``tls_watch``: seconds between looks at an upstream's TLS files (0: on reload only)."""
        self._h1 = h1
        self._pools: dict[Upstream, UpstreamPool] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self.tls_watch = tls_watch

    def pool(self, upstream: Upstream) -> UpstreamPool:
        pool = self._pools.get(upstream)
        if pool is None:
            pool = self._pools[upstream] = UpstreamPool(upstream, self._h1)
            if pool.files is not None:
                pool.files.watch(self.tls_watch, f"upstream-tls-{upstream.name}")
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

    async def refresh_tls(self) -> None:
        """Read every https:// upstream's CA and client certificate files again (a
        reload: rotated certificates take effect without a config change; files that
        do not load are logged, and the previous context stays)."""
        for pool in list(self._pools.values()):
            if pool.files is not None:
                await pool.files.update(pool.upstream)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(p.close() for p in pools))
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
