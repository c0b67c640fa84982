"""TLS on both sides: the listener's certificates (rotated live) and the upstreams' contexts.

The listener
------------
``ListenerTls`` owns the ``ssl.SSLContext`` given to the proxy's ``TCPSite``. That
context never changes (aiohttp cannot swap it under a bound socket); instead its
``sni_callback`` hands every new handshake the *current* context for the client's
server name: one of ``listen.tls.sni`` (exact name, then ``*.parent``), else the
default certificate. Rotating certificates therefore means building new contexts
from the files and swapping one reference: connections already open keep the
session they negotiated, new handshakes get the new certificate, nothing is dropped.

The files are read again when they change (``Rotating``: polled every
``watch_interval`` seconds, size and mtime of each file) and on every reload (SIGHUP,
``POST /reload``, a config change). A set of files that does not load (a certificate
written before its key, say) is logged and the previous certificates keep serving;
the next change is tried again. Nothing below TLS 1.2 is ever negotiated.

``listen.redirect_http`` adds a plain-HTTP listener answering every request with
``308 Permanent Redirect`` to the same host and path on https:// (the TLS
listener's port).

Upstreams
---------
``upstream_ssl`` gives an https:// upstream's context (verifying by default, the
client certificate for mutual TLS) and the server name for SNI and verification;
``follow_upstream`` rotates it with its ``ca``, ``cert`` and ``key`` files, as the
listener's (``strangler.forward.pool`` swaps it in for new connections).
``tls_error`` maps an ``ssl`` failure to ``ForwardError`` kind ``tls`` at stage
``connect``, so a bad upstream certificate is a 502 with one line, like
``upstream 'billing': certificate verify failed: certificate has expired``, and is
counted in ``strangler_upstream_errors_total{kind="tls"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Self, TypeVar

from aiohttp import web
from yarl import URL

from strangler.config.model import CertKey, Listen, ListenTls, Upstream
from strangler.config.tls_files import client_context, server_context
from strangler.config.values import BadValue
from strangler.errors import ForwardError, ForwardErrorKind, ForwardStage

__all__ = [
    "ListenerTls",
    "Rotating",
    "UpstreamSsl",
    "follow_upstream",
    "tls_error",
    "upstream_ssl",
]

log = logging.getLogger("strangler.tls")

_Fingerprint = tuple[tuple[str, int, int], ...]
S = TypeVar("S")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Contexts:
    """One loaded generation of the listener's certificates."""

    default: ssl.SSLContext
    exact: dict[str, ssl.SSLContext]
    wildcard: dict[str, ssl.SSLContext]  # "example.com" for "*.example.com"

    def pick(self, server_name: str | None) -> ssl.SSLContext:
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        found = self.exact.get(name)
        if found is None and "." in name:
            found = self.wildcard.get(name.split(".", 1)[1])
        return found or self.default


def _load(spec: ListenTls) -> _Contexts:
    """Every certificate of ``spec`` loaded; ``BadValue`` if any does not."""
    exact: dict[str, ssl.SSLContext] = {}
    wildcard: dict[str, ssl.SSLContext] = {}
    for host, pair in spec.sni.items():
        ctx = server_context(pair.cert, pair.key, spec.min_version)
        if host.startswith("*."):
            wildcard[host[2:].lower()] = ctx
        else:
            exact[host.lower()] = ctx
    return _Contexts(server_context(spec.cert, spec.key, spec.min_version), exact, wildcard)


def _files(spec: ListenTls) -> tuple[str, ...]:
    pairs: list[CertKey | ListenTls] = [spec, *spec.sni.values()]
    return tuple(path for pair in pairs for path in (pair.cert, pair.key))


def _fingerprint(files: tuple[str, ...]) -> _Fingerprint:
    out = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            out.append((path, -1, -1))  # gone for now: a change when it comes back
        else:
            out.append((path, st.st_size, st.st_mtime_ns))
    return tuple(out)


class Rotating(Generic[S, T]):
    """``current``: what ``build`` made of the files ``spec`` names, built again when
    they change (``check``: size and mtime of each file; ``watch`` polls it) and on
    every ``update`` (a reload). Files that do not build (a certificate written
    before its key, say: ``BadValue``) are logged and ``current`` stays; the next
    change is tried again. ``adopt`` is told of each new ``current``."""

    def __init__(
        self,
        label: str,
        spec: S,
        current: T,
        build: Callable[[S], T],
        files: Callable[[S], tuple[str, ...]],
        adopt: Callable[[T], None] | None = None,
    ) -> None:
        self.label = label  # for the log: "TLS certificates", "upstream 'billing' TLS files"
        self.spec, self.current = spec, current
        self._build, self._files, self._adopt = build, files, adopt
        self._seen = _fingerprint(files(spec))
        self.reloads = 0  # builds adopted after the first
        self.failed = 0  # attempts that found files that do not build
        self._lock = asyncio.Lock()
        self._loaded = asyncio.Condition()  # notified after each attempt
        self._watcher: asyncio.Task[None] | None = None

    async def update(self, spec: S) -> bool:
        """Build again from ``spec`` (the reloaded config's). ``False`` when the files
        did not build: the previous ``current`` stays."""
        async with self._lock:
            files = self._files(spec)
            seen = await asyncio.to_thread(_fingerprint, files)
            try:
                built = await asyncio.to_thread(self._build, spec)
            except BadValue as e:
                log.error("%s not reloaded, still using the previous ones: %s", self.label, e)
                self._seen = seen  # try again on the next change
                self.failed += 1
                ok = False
            else:
                self.spec, self.current, self._seen = spec, built, seen
                self.reloads += 1
                if self._adopt is not None:
                    self._adopt(built)
                log.info("%s loaded (%d files)", self.label, len(files))
                ok = True
        async with self._loaded:
            self._loaded.notify_all()
        return ok

    async def check(self) -> None:
        """Build again if a file changed since the last attempt."""
        if await asyncio.to_thread(_fingerprint, self._files(self.spec)) != self._seen:
            await self.update(self.spec)

    async def wait_until(self, check: Callable[[Self], bool]) -> None:
        """Return once ``check(self)`` holds; checked after every attempt."""
        async with self._loaded:
            await self._loaded.wait_for(lambda: check(self))

    def watch(self, interval: float, name: str) -> None:
        """Poll the files every ``interval`` seconds (0: never) until ``close``."""
        if interval > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(interval), name=name)

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.check()

    async def close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


class ListenerTls(Rotating[ListenTls, _Contexts]):
    """The TLS side of the proxy's listener: certificates, their rotation, the redirect.

    Create it with the config's ``listen`` (``create`` returns ``None`` for a plain
    listener); pass ``context`` to the ``TCPSite``; ``start`` once bound; ``update``
    on every reload; ``close`` on shutdown.
    """

    def __init__(self, listen: Listen, spec: ListenTls) -> None:
        # _load raises BadValue at start: the server cannot start
        super().__init__("TLS certificates", spec, _load(spec), _load, _files)
        self.listen = listen
        self.context = server_context(spec.cert, spec.key, spec.min_version)
        self.context.sni_callback = self._on_hello
        self._redirect: web.ServerRunner | None = None
        self.redirect_port = 0

    @classmethod
    def create(cls, listen: Listen) -> ListenerTls | None:
        return None if listen.tls is None else cls(listen, listen.tls)

    def _on_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        # Runs inside the handshake, for every new connection: a dict lookup.
        conn.context = self.current.pick(server_name)

    async def start(self, https_port: int, *, watch_interval: float, reuse_port: bool) -> None:
        """Start watching the files, and the plain-HTTP redirect when configured."""
        self.watch(watch_interval, "tls-cert-watcher")
        if self.listen.redirect_http is not None:
            self._redirect = await _start_redirect(
                self.listen.redirect_http, https_port, reuse_port=reuse_port
            )
            self.redirect_port = _port(self._redirect)

    async def update(self, spec: ListenTls | None) -> bool:
        if spec is None:
            log.warning("listen.tls removed from the config: a restart turns TLS off")
            return False
        return await super().update(spec)

    async def close(self) -> None:
        await super().close()
        runner, self._redirect = self._redirect, None
        if runner is not None:
            await runner.cleanup()


async def _start_redirect(listen: Listen, https_port: int, *, reuse_port: bool) -> web.ServerRunner:
    suffix = "" if https_port == 443 else f":{https_port}"

    async def redirect(request: web.BaseRequest) -> web.StreamResponse:
        try:
            host = URL.build(scheme="http", authority=request.host).raw_host or listen.host
        except ValueError:
            return web.Response(status=400, text="invalid Host header\n")
        if ":" in host:  # an IPv6 literal goes back in brackets
            host = f"[{host}]"
        location = f"https://{host}{suffix}{request.raw_path}"
        return web.Response(status=308, headers={"Location": location})

    runner = web.ServerRunner(web.Server(redirect), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port, reuse_port=reuse_port or None)
    await site.start()
    return runner


def _port(runner: web.BaseRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    return 0


# ---------------------------------------------------------------------------- upstreams


@dataclass(frozen=True, slots=True)
class UpstreamSsl:
    """How to open a connection to one upstream: ``context`` is ``None`` for http://.
    ``problem``: the context could not be built (files changed since validation); every
    connection attempt fails with it rather than quietly connecting without TLS."""

    context: ssl.SSLContext | None
    server_hostname: str | None
    problem: str | None = None


_PLAIN: Final = UpstreamSsl(None, None)


def _upstream_ssl(upstream: Upstream) -> UpstreamSsl:
    """``upstream``'s context from its files; ``BadValue`` when they do not load."""
    return UpstreamSsl(
        client_context(upstream.tls), upstream.tls.server_name or URL(upstream.url).raw_host
    )


def _upstream_files(upstream: Upstream) -> tuple[str, ...]:
    return tuple(path for path in (upstream.tls.ca, upstream.tls.cert, upstream.tls.key) if path)


def upstream_ssl(upstream: Upstream) -> UpstreamSsl:
    """The TLS settings for ``upstream``, built once per pool (not per request)."""
    url = URL(upstream.url)
    if url.scheme != "https":
        return _PLAIN
    if not upstream.tls.verify:
        log.warning("upstream %r: TLS certificate NOT verified (verify: false)", upstream.name)
    try:
        return _upstream_ssl(upstream)
    except BadValue as e:
        log.error("upstream %r: %s", upstream.name, e)
        return UpstreamSsl(None, upstream.tls.server_name or url.raw_host, problem=str(e))


def follow_upstream(
    upstream: Upstream, current: UpstreamSsl, adopt: Callable[[UpstreamSsl], None]
) -> Rotating[Upstream, UpstreamSsl] | None:
    """The rotation of an https:// upstream's ``tls`` files (``ca``, ``cert``, ``key``),
    as the listener's: ``adopt`` gets each new context, built once per change; files
    that do not load are logged and ``current`` stays. ``None``: no file to follow."""
    if current is _PLAIN or not _upstream_files(upstream):
        return None
    label = f"upstream {upstream.name!r} TLS files"
    return Rotating(label, upstream, current, _upstream_ssl, _upstream_files, adopt)


def tls_error(upstream: str, e: ssl.SSLError) -> ForwardError:
    """``e`` as a ``ForwardError`` of kind ``tls`` at stage ``connect``.

    The detail is one line: ``certificate verify failed: <why>`` for a certificate
    that does not verify (expired, wrong host, unknown issuer), else OpenSSL's reason.
    """
    if isinstance(e, ssl.SSLCertVerificationError):
        why = e.verify_message or e.reason or "certificate rejected"
        detail = f"certificate verify failed: {why}"
    else:
        reason = e.reason or e.strerror or type(e).__name__
        detail = f"TLS handshake failed: {str(reason).lower().replace('_', ' ')}"
    return ForwardError(upstream, ForwardStage.CONNECT, ForwardErrorKind.TLS, detail)
