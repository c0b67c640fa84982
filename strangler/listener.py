"""The proxy's listening socket, and the file-descriptor budget it lives in.

A proxy holds two descriptors per request in flight (the client's and the upstream's)
and one per idle client, so a flood of connections that send nothing can use up the
process's descriptors: accept fails with ``EMFILE``, and the admin port stops
answering with the proxy port. Three measures keep that from happening:

- ``raise_fd_limit()`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start;
- ``connection_cap()`` keeps ``limits.max_connections`` below that limit with room for
  the upstream side, the admin listener and files (``FD_RESERVE``);
- ``CappedSite`` can stop accepting while the cap is reached (``ProxyHTTPServer`` asks
  it to): new clients then wait in the kernel's accept backlog, and are accepted as
  soon as a connection closes. Pausing closes only a duplicate of the listening
  descriptor, so the socket keeps listening and keeps its backlog; it works the same
  on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from typing import Final

from aiohttp import web

from strangler.config.model import Limits
from strangler.protocol import ListenerLimits

log = logging.getLogger("strangler.listener")

DEFAULT_CONNECTIONS: Final = 10000  # per worker, when limits.max_connections is 0
FD_RESERVE: Final = 256  # admin connections, config and log files, DNS, state store
_NO_LIMIT_TARGET: Final = 1 << 20  # when the hard limit is unlimited
TLS_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds a client gets to finish its TLS handshake


def raise_fd_limit() -> int:
    """Raise the soft descriptor limit to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NO_LIMIT_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:  # a container may forbid it: keep going
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, e)
    return _NO_LIMIT_TARGET if soft == resource.RLIM_INFINITY else soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """``configured`` (0: ``DEFAULT_CONNECTIONS``), lowered so that every client
    connection can also have its upstream connection within ``fd_limit`` descriptors
    (never below 16)."""
    budget = max(16, (fd_limit - FD_RESERVE) // 2)
    if not configured:
        return min(DEFAULT_CONNECTIONS, budget)
    if configured > budget:
        log.warning(
            "limits.max_connections %d is more than the open-file limit %d allows; using %d",
            configured,
            fd_limit,
            budget,
        )
        return budget
    return configured


def listen_socket(host: str, port: int, *, reuse_port: bool, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (IPv4 or IPv6 by ``host``)."""
    family, _type, _proto, _name, addr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.create_server(
        (str(addr[0]), port), family=family, backlog=backlog, reuse_port=reuse_port
    )
    sock.setblocking(False)
    return sock


class CappedSite(web.BaseSite):
    """An aiohttp site on a socket we own, that can ``pause()`` and ``resume()``."""

    __slots__ = ("_name", "_reopen", "_sock", "_stopped", "_want_open")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        *,
        backlog: int,
        ssl_context: ssl.SSLContext | None = None,  # listen.tls (strangler.tls)
    ) -> None:
        super().__init__(runner, backlog=backlog, ssl_context=ssl_context)
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self._name = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        self._want_open = True
        self._stopped = False
        self._reopen: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def accepting(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        await super().start()
        await self._open()

    async def _open(self) -> None:
        factory = self._runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        # A duplicate: closing it to pause leaves our socket (and its backlog) listening.
        self._server = await loop.create_server(
            factory,
            sock=self._sock.dup(),
            backlog=self._backlog,
            ssl=self._ssl_context,
            # a client that stalls its TLS handshake holds a socket: not for the default 60s
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )

    def pause(self) -> None:
        """Stop accepting; connections wait in the backlog."""
        self._want_open = False
        if self._server is not None:
            self._server.close()
            self._server = None

    def resume(self) -> None:
        """Accept again (asynchronously: the loop registers the socket again)."""
        self._want_open = True
        if self._server is None and self._reopen is None and not self._stopped:
            self._reopen = asyncio.get_running_loop().create_task(
                self._reopen_soon(), name="listener-resume"
            )

    async def _reopen_soon(self) -> None:
        try:
            if self._want_open and self._server is None and not self._stopped:
                await self._open()
            if not self._want_open:  # paused again while reopening
                self.pause()
        finally:
            self._reopen = None

    async def stop(self) -> None:
        self._stopped = True
        task, self._reopen = self._reopen, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().stop()
        self._server = None
        self._sock.close()


def listener_limits(limits: Limits, fd_limit: int) -> ListenerLimits:
    """The per-connection limits of ``limits:``, with the connection cap fitted to
    ``fd_limit``."""
    return ListenerLimits(
        max_head_bytes=limits.max_head_bytes,
        header_timeout=limits.header_timeout,
        body_timeout=limits.body_timeout,
        underscore_headers=limits.underscore_headers,
        max_connections=connection_cap(limits.max_connections, fd_limit),
    )
