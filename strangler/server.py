"""Wiring and lifecycle: start, reload, drain, stop; and ``--workers N`` processes.

One ``ProxyServer`` per process owns every long-lived object (snapshot holder,
forwarder pools, metrics, access log, listeners, the config watcher) and passes them
to the pieces that need them; nothing is global.

Reload (SIGHUP, a config file change, or ``POST /reload`` on the admin port): the files
are read and validated in a thread, compiled, and swapped in with one assignment.
A config with problems is logged in ``strangler check`` format and the old snapshot
keeps serving. Requests in flight finish on the snapshot they started with.

Shutdown (SIGTERM/SIGINT): readiness turns to 503, listeners close, in-flight requests
get up to ``drain`` seconds to finish, then pools and the access log close.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from aiohttp import web

from strangler.accesslog import AccessLog
from strangler.admin.app import AdminState, build_admin_app
from strangler.admin.auth import check_exposure, load_token
from strangler.admin.progress_api import add_progress_routes
from strangler.admin.release_api import add_release_routes
from strangler.admin.status_page import add_status_page
from strangler.config import load_config
from strangler.config.model import Config, Slo
from strangler.errors import ConfigError
from strangler.forward.pool import Forwarder
from strangler.h1listen import LlhttpServer
from strangler.listener import CappedSite, listen_socket, listener_limits, raise_fd_limit
from strangler.malloc import tune_malloc
from strangler.metrics import Metrics, enable_multiprocess, live_workers, worker_exited
from strangler.migrate.api import add_migrate_routes
from strangler.migrate.metrics import MigrationCollector
from strangler.migrate.runner import Autopilot
from strangler.migrate.store import MigrateStore, Store
from strangler.pipeline import Proxy
from strangler.plan.admin import add_plan_routes
from strangler.progress import ProgressCollector, ProgressTracker
from strangler.protocol import ProxyHTTPServer
from strangler.release import AuditLog, FileStateStore, StateFileError
from strangler.release.controls import ReleaseCollector, ReleaseControls, canary_groups
from strangler.release.pending import FileStoreCollector, PendingChanges
from strangler.runtime import SnapshotHolder, compile_snapshot
from strangler.shadow.api import add_shadow_routes
from strangler.shadow.metrics import ShadowMetrics
from strangler.shadow.samples import ShadowResults
from strangler.shadow.service import ShadowService
from strangler.shadow.shared import SharedResults
from strangler.tls import ListenerTls
from strangler.workers import RunDir, die_with_supervisor, respawn_config

if TYPE_CHECKING:  # redis is an optional extra: imported only with state.backend: redis
    from strangler.release.redis_store import RedisStateStore
    from strangler.tracing import Tracing

log = logging.getLogger("strangler")


def _fingerprint(files: tuple[str, ...]) -> tuple[tuple[str, int, int, int], ...]:
    """What changes when a config file, or the set of files in its folders, changes.

    Folder mtimes catch a new team file matching an include glob, and the atomic
    symlink swap Kubernetes does when a ConfigMap changes.
    """
    paths = sorted({*files, *(str(Path(f).parent) for f in files)})
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((p, -1, -1, -1))
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    config_path: Path | None  # None: a fixed config (zero-config form), no reload from disk
    state_dir: Path | None = None  # runtime state files; None: .strangler beside the config
    worker_index: int = 0  # stable across a worker's restarts: names its state files
    # --workers N: the supervisor's run dir (``workers.RunDir``), where the workers
    # share release changes the state disk refused; None: one worker, kept in memory
    runtime_dir: Path | None = None
    reuse_port: bool = False
    watch_interval: float = 1.0  # seconds between config file checks; 0 disables
    handle_signals: bool = False
    shared_dir: Path | None = None  # --workers: where workers publish shadow results


class ProxyServer:
    """One process's proxy: listeners, snapshot, pools, metrics, access log."""

    def __init__(
        self,
        config: Config,
        options: ServeOptions,
        *,
        metrics: Metrics | None = None,
        access_stream: IO[str] | None = None,
    ) -> None:
        self.options = options
        self.metrics = metrics or Metrics()
        self.holder = SnapshotHolder(compile_snapshot(config, self.metrics))
        self.metrics.set_config_version(config.version)
        self.tracing = _tracing(config)  # None: off; chosen once, at start
        self.forwarder = Forwarder() if self.tracing is None else Forwarder(h1=self.tracing.h1_pool)
        self.forwarder.tls_watch = options.watch_interval  # upstreams' TLS files, as listen's
        self._access_stream = access_stream
        self.access_log = self._open_access_log(config)
        self.state_dir = options.state_dir or Path(config.state.dir)
        self.redis_store = _redis_store(config)  # None: the state file in state_dir
        self.release = ReleaseControls(
            self.redis_store or FileStateStore.in_dir(self.state_dir),
            AuditLog.in_dir(self.state_dir),
            file_poll=config.state.file_poll,
            pending=PendingChanges.in_dir(options.runtime_dir),
            windows=None if options.runtime_dir is None else options.runtime_dir / "slo",
        )
        # A kill switch that cannot be read must stop the start (StateFileError),
        # never be silently forgotten.
        self.release.start(_slos(config), canary_groups(config.routes))
        self.metrics.add_collector(ReleaseCollector(self.release, self.holder))
        if self.redis_store is not None:
            from strangler.release.redis_store import StateStoreCollector

            self.metrics.add_collector(StateStoreCollector(self.redis_store))
        else:
            self.metrics.add_collector(FileStoreCollector(lambda: self.release.store_up))
        self.progress = ProgressTracker(self.holder, worker=str(options.worker_index))
        self.progress.load(self.progress.state_file(self.state_dir))
        self.metrics.add_collector(ProgressCollector(self.progress, self.holder))
        self.shadow_results = ShadowResults(ShadowMetrics(self.metrics.registry))
        self.shadow_shared = SharedResults(
            self.shadow_results, options.shared_dir, options.worker_index
        )
        self.shadow = ShadowService(self.forwarder.pool, self.shadow_results, tracing=self.tracing)
        self.shadow.configure(self.holder.current.shadows())
        self.proxy = Proxy(
            self.holder,
            self.forwarder,
            self.metrics,
            self.access_log,
            self.progress,
            self.release,
            self.shadow,
            self.tracing,
        )
        token = load_token(config.admin)
        check_exposure(config.admin, token)  # before anything listens
        self.autopilot = Autopilot(
            self.holder, self.metrics, self.release, _migrate_store(config, self.state_dir)
        )
        self.metrics.add_collector(MigrationCollector(self.autopilot))
        self.admin_state = AdminState(
            holder=self.holder,
            metrics=self.metrics,
            token=token,
            reload=self.reload,
            state_store=(
                self.release.store_status if self.redis_store is None else self.redis_store.status
            ),
        )
        self._proxy_runner: web.ServerRunner | None = None
        self.tls: ListenerTls | None = None  # listen.tls: certificates, rotation, redirect
        self._admin_runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._swapped = asyncio.Condition()  # notified after every applied reload
        self._watcher: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._autopilot_task: asyncio.Task[None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()  # strong refs to signal-started tasks
        self._stopping = asyncio.Event()
        self._fingerprint = _fingerprint(config.files)
        self.proxy_port = 0
        self.admin_port = 0

    def _open_access_log(self, config: Config) -> AccessLog:
        stream = self._access_stream
        if stream is None and config.access_log.path:
            stream = open(config.access_log.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        return AccessLog(config.access_log.format, stream)

    @property
    def config(self) -> Config:
        return self.holder.current.config

    async def start(self) -> None:
        """Bind the proxy and admin listeners and start watching the config."""
        config = self.config
        self.forwarder.reconcile(config.upstreams.values(), config.drain_seconds)
        limits = config.limits
        server = ProxyHTTPServer(
            self.proxy.handle,
            limits=listener_limits(limits, raise_fd_limit()),
            handler_cancellation=True,
            access_log=None,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=limits.max_headers,
            keepalive_timeout=limits.keepalive_timeout,
            auto_decompress=False,
        )
        if os.environ.get("STRANGLER_LISTENER") == "llhttp":  # experimental, off by default
            server = LlhttpServer.like(server, self.proxy.serve)
        self._proxy_runner = web.ServerRunner(
            server, shutdown_timeout=config.drain_seconds, handle_signals=False
        )
        await self._proxy_runner.setup()
        self.tls = ListenerTls.create(config.listen)
        sock = listen_socket(
            config.listen.host, config.listen.port, reuse_port=self.options.reuse_port, backlog=1024
        )
        site = CappedSite(
            self._proxy_runner,
            sock,
            backlog=1024,
            ssl_context=None if self.tls is None else self.tls.context,
        )
        server.listener = site  # paused at limits.max_connections
        await site.start()
        self.proxy_port = _bound_port(self._proxy_runner)
        if self.tls is not None:
            await self.tls.start(
                self.proxy_port,
                watch_interval=self.options.watch_interval,
                reuse_port=self.options.reuse_port,
            )
        admin_app = build_admin_app(self.admin_state)
        add_progress_routes(
            admin_app, self.progress, self.holder, self.state_dir,
            token=self.admin_state.token, audit=self.release.audit,
            evidence=self.autopilot.decommission_evidence,
        )  # fmt: skip
        add_release_routes(admin_app, self.release, self.holder, self.forwarder)
        add_shadow_routes(admin_app, self.shadow_shared)
        add_migrate_routes(admin_app, self.autopilot)
        add_plan_routes(admin_app, self.holder, self.release, self.proxy.recording)
        add_status_page(admin_app)
        self._admin_runner = web.AppRunner(
            admin_app,
            access_log=None,
            shutdown_timeout=5.0,
            keepalive_timeout=limits.keepalive_timeout,
        )
        await self._admin_runner.setup()
        admin = web.TCPSite(
            self._admin_runner,
            config.admin.listen.host,
            config.admin.listen.port,
            reuse_port=self.options.reuse_port or None,
        )
        await admin.start()
        self.admin_port = _bound_port(self._admin_runner)
        if self.options.handle_signals:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
            loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop = asyncio.get_running_loop()
        self._flusher = loop.create_task(
            self.progress.run_flusher(self.state_dir), name="progress-flusher"
        )
        self._release_task = loop.create_task(self.release.run(), name="release-state")
        self._autopilot_task = loop.create_task(self.autopilot.run(), name="autopilot")
        if self.redis_store is not None:
            self._follow_task = loop.create_task(
                self._follow(self.redis_store), name="release-state-follow"
            )
        if self.options.config_path is not None and self.options.watch_interval > 0:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(), name="config-watcher"
            )
        log.info(
            "strangler %s serving on %s:%d (admin %s:%d), config version %s, %d routes",
            _version(),
            config.listen.host,
            self.proxy_port,
            config.admin.listen.host,
            self.admin_port,
            config.version,
            len(config.routes),
        )

    async def _follow(self, store: RedisStateStore) -> None:
        """Sync as soon as another replica publishes a change. The poll in
        ``release.run()`` stays: it covers a lost message, and resyncs."""
        async for _ in store.subscribe():
            await self.release.sync()

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload-sighup")
        self._background.add(task)
        task.add_done_callback(self._sighup_done)

    def _sighup_done(self, task: asyncio.Task[tuple[str, str]]) -> None:
        """Retrieve the result, so a failure is logged here, once, and never as
        "Task exception was never retrieved"."""
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reload on SIGHUP failed", exc_info=task.exception())

    async def reload(self) -> tuple[str, str]:
        """Load, validate and swap in the config from disk.

        Returns ``(result, message)`` with result ``applied``, ``unchanged`` or
        ``rejected``; never raises for a bad config.
        """
        path = self.options.config_path
        if path is None:
            return "unchanged", "no config file: started with a fixed config"
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, path)
                self._fingerprint = _fingerprint(config.files)
                if self.tls is not None:  # certificate files may change with no config change
                    await self.tls.update(config.listen.tls)
                await self.forwarder.refresh_tls()
                if config.version == self.config.version:
                    self.metrics.config_reloads.labels("unchanged").inc()
                    return "unchanged", f"version {config.version} is already loaded"
                snapshot = compile_snapshot(config, self.metrics)
            except ConfigError as e:
                return self._rejected(str(e))
            except Exception as e:  # a bug in loading or compiling: still only a rejection
                log.debug("config reload failed", exc_info=True)
                return self._rejected(f"{path}: cannot load the config: {type(e).__name__}: {e}")
            if config.tracing != self.config.tracing:  # the tracer is built once, at start
                log.warning("tracing: the changed settings take effect at the next start")
            self.forwarder.reconcile(config.upstreams.values(), config.drain_seconds)
            self.proxy.adopt(snapshot)  # the routes' chains, compiled before the swap
            old = self.holder.swap(snapshot)
            self.release.reconcile(_slos(config), canary_groups(config.routes))
            self.shadow.configure(snapshot.shadows())
            self.metrics.set_config_version(config.version)
            self.metrics.config_reloads.labels("applied").inc()
            async with self._swapped:
                self._swapped.notify_all()
            log.info(
                "config reloaded: version %s -> %s, %d routes",
                old.version,
                config.version,
                len(config.routes),
            )
            return "applied", f"version {config.version} loaded"

    def _rejected(self, message: str) -> tuple[str, str]:
        self.metrics.config_reloads.labels("rejected").inc()
        log.error(
            "config reload rejected, still serving version %s:\n%s", self.config.version, message
        )
        return "rejected", message

    async def wait_for_generation(self, generation: int) -> None:
        """Return once the snapshot generation reaches ``generation`` (1 = first load)."""
        async with self._swapped:
            await self._swapped.wait_for(lambda: self.holder.generation >= generation)

    async def _watch(self) -> None:
        """Reload when a config file changes. Nothing but cancellation ends it: a
        failure in one round is logged and the next round runs."""
        interval = self.options.watch_interval
        while True:
            await asyncio.sleep(interval)
            try:
                current = await asyncio.to_thread(_fingerprint, self.config.files)
                if current != self._fingerprint:
                    self._fingerprint = current
                    await self.reload()
            except Exception:
                log.exception("config watcher: this round failed; watching on")

    async def wait_for_stop_signal(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Drain: refuse new connections, finish in-flight requests (up to ``drain``).

        Idempotent: a second call does nothing.
        """
        self.admin_state.draining = True
        for task in (self._watcher, self._release_task, self._follow_task, self._autopilot_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watcher = self._release_task = self._follow_task = self._autopilot_task = None
        if not self.release.store_up:  # a kill switch only in memory dies with us
            log.error("release changes never stored: %s", self.release.store_status())
        proxy_runner, self._proxy_runner = self._proxy_runner, None
        if self.tls is not None:
            await self.tls.close()
        if proxy_runner is not None:
            await proxy_runner.cleanup()
        if proxy_runner is not None:  # mirrored requests still comparing: bounded wait
            await self.shadow.drain(min(self.config.drain_seconds, 5.0))
        if self.tracing is not None and proxy_runner is not None:  # export the last spans
            await self.tracing.shutdown(min(self.config.drain_seconds, 5.0))
        flusher, self._flusher = self._flusher, None
        if flusher is not None:  # after the drain, so late requests are counted
            flusher.cancel()  # a cancelled flusher saves one last time
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        admin_runner, self._admin_runner = self._admin_runner, None
        if admin_runner is not None:
            await admin_runner.cleanup()
            await self.forwarder.close()
            self.access_log.close()
            if self.redis_store is not None:
                await asyncio.to_thread(self.redis_store.close)
            log.info("strangler stopped")


def _tracing(config: Config) -> Tracing | None:
    """The process's tracing (``tracing:``), or None. The OpenTelemetry packages are
    imported only here: they are an optional extra (validation said if missing)."""
    if config.tracing is None:
        return None
    from strangler.tracing import Tracing

    return Tracing(config.tracing)


def _migrate_store(config: Config, state_dir: Path) -> Store:
    """Where the autopilot keeps its states and lease: beside the release state (the
    state directory, or Redis with ``state.backend: redis``, so that the replicas
    sharing Redis share one evaluator)."""
    if config.state.backend != "redis":
        return MigrateStore(state_dir)
    from strangler.migrate.redis_store import RedisMigrateStore

    redis_state = config.state.redis
    return RedisMigrateStore(redis_state.url, key_prefix=redis_state.key_prefix)


def _redis_store(config: Config) -> RedisStateStore | None:
    """The Redis store when ``state.backend`` is ``redis``, else ``None``."""
    if config.state.backend != "redis":
        return None
    try:
        from strangler.release.redis_store import RedisStateStore
    except ImportError as e:
        raise StateFileError(
            "state.backend is redis, but the redis package is not installed: "
            "pip install 'strangler[redis]'"
        ) from e
    return RedisStateStore.from_config(config.state.redis)


def _slos(config: Config) -> dict[str, Slo | None]:
    return {r.name: r.slo for r in config.routes}


def _bound_port(runner: web.BaseRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    return 0


def _version() -> str:
    from strangler import __version__

    return __version__


def install_uvloop() -> None:
    """Use uvloop when it is installed: the proxy's socket work runs about 2x faster."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


async def serve_async(config: Config, options: ServeOptions) -> int:
    server = ProxyServer(config, options)
    await server.start()
    try:
        await server.wait_for_stop_signal()
    finally:
        log.info("draining (up to %.0fs)", server.config.drain_seconds)
        await server.stop()
    return 0


def run_worker(config: Config, options: ServeOptions) -> int:
    install_uvloop()
    tune_malloc()
    return asyncio.run(serve_async(config, options))


def run(config: Config, options: ServeOptions, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT. ``workers > 1``: N processes share the port.

    Raises ``AdminExposed`` before starting anything (see ``admin.auth``)."""
    if workers <= 1:
        return run_worker(config, options)
    check_exposure(config.admin, load_token(config.admin))  # once, not in every worker
    return _supervise(config, options, workers)


_FORWARDED: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _supervise(config: Config, options: ServeOptions, workers: int) -> int:
    """Start ``workers`` processes on the same port (SO_REUSEPORT), pass SIGHUP/SIGTERM
    on, replace a worker that dies unexpectedly (the replacement serves the current
    config: ``workers.respawn_config``), exit when all have stopped."""
    ctx = multiprocessing.get_context("fork")
    # What the workers share (metric files, shadow results, the accepted config,
    # release changes the state disk refused): private to this user, removed on exit.
    run_dir = RunDir(path=Path(tempfile.mkdtemp(prefix="strangler-run-"))).create()
    run_dir.save_accepted(config)
    opts = dataclasses.replace(
        options,
        reuse_port=True,
        handle_signals=True,
        shared_dir=run_dir.shadow,
        runtime_dir=run_dir.path,
    )
    supervisor = os.getpid()
    procs: list[multiprocessing.process.BaseProcess] = []
    started: dict[int, float] = {}
    stopping = False

    index_of: dict[int, int] = {}

    def spawn(index: int, *, respawn: bool = False) -> multiprocessing.process.BaseProcess:
        worker_opts = dataclasses.replace(opts, worker_index=index)
        p = ctx.Process(
            target=_worker_main, args=(config, worker_opts, run_dir, supervisor, respawn)
        )
        # Blocked across the fork: until the worker has its own handlers, a SIGHUP
        # would kill it (or run this process's handler in the child).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        started[p.pid or 0] = time.monotonic()
        index_of[p.pid or 0] = index
        return p

    def forward(sig: int) -> Callable[[int, object], None]:
        def handler(_signum: int, _frame: object) -> None:
            nonlocal stopping
            if sig in (signal.SIGTERM, signal.SIGINT):
                stopping = True
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, sig)

        return handler

    for sig in _FORWARDED:
        signal.signal(sig, forward(sig))
    procs.extend(spawn(i) for i in range(workers))
    log.info("supervisor %d started %d workers", supervisor, workers)
    rc = 0
    while procs:
        sentinel_map = {p.sentinel: p for p in procs}
        ready = multiprocessing.connection.wait(list(sentinel_map))
        for s in ready:
            p = sentinel_map[s]  # type: ignore[index]
            p.join()
            procs.remove(p)
            if p.pid is not None:
                worker_exited(p.pid, run_dir.metrics)
            if stopping:
                rc = rc or (p.exitcode or 0)
            elif p.exitcode != 0 and time.monotonic() - started.get(p.pid or 0, 0.0) < 5.0:
                # Failing right after start (port taken, state unreadable): restarting
                # would only spin. Stop the others and report failure. (A worker an
                # operator stopped exits 0 and is replaced like any other.)
                log.error("worker %s exited with %s right after start; stopping", p.pid, p.exitcode)
                stopping, rc = True, 1
                forward(signal.SIGTERM)(signal.SIGTERM, None)
            else:
                log.error("worker %s exited with %s; starting a new one", p.pid, p.exitcode)
                procs.append(spawn(index_of.get(p.pid or 0, 0), respawn=True))
    shutil.rmtree(run_dir.path, ignore_errors=True)
    return rc


def _worker_main(
    config: Config, options: ServeOptions, run_dir: RunDir, supervisor: int, respawn: bool
) -> None:
    enable_multiprocess(run_dir.metrics)
    # Signals that come while the worker starts are acted on once it serves
    # (``ProxyServer.start`` installs the real handlers): a reload is not lost.
    early: set[int] = set()
    for sig in _FORWARDED:
        signal.signal(sig, lambda signum, _frame: early.add(signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    die_with_supervisor(supervisor)  # SIGTERM (a drain) if the supervisor is killed
    if respawn:  # replacing a worker that exited: serve what the others serve now
        config = respawn_config(options.config_path, run_dir, config)
    install_uvloop()
    tune_malloc()
    sys.exit(asyncio.run(_serve_worker(config, options, run_dir, supervisor, early)))


async def _serve_worker(
    config: Config, options: ServeOptions, run_dir: RunDir, supervisor: int, early: set[int]
) -> int:
    """One worker: ``serve_async`` plus what makes the workers answer as one proxy
    (the supervisor's pid in ``/readyz``, shadow results published for the others,
    every accepted config recorded for a replacement worker)."""
    server = ProxyServer(config, options)
    server.admin_state.supervisor_pid = supervisor
    server.admin_state.workers = lambda: list(live_workers(run_dir.metrics))
    await server.start()
    loop = asyncio.get_running_loop()
    tasks = [
        loop.create_task(server.shadow_shared.run(), name="shadow-publish"),
        loop.create_task(_record_accepted(server, run_dir), name="config-accepted"),
    ]
    try:
        if signal.SIGTERM in early or signal.SIGINT in early:
            server.request_stop()
        elif signal.SIGHUP in early:
            await server.reload()
        await server.wait_for_stop_signal()
    finally:
        log.info("draining (up to %.0fs)", server.config.drain_seconds)
        await server.stop()
        for task in tasks:  # after the drain: the last shadow comparisons get published
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0


async def _record_accepted(server: ProxyServer, run_dir: RunDir) -> None:
    """Record every config this worker swaps in, for a worker that replaces one."""
    while True:
        await server.wait_for_generation(server.holder.generation + 1)
        await asyncio.to_thread(run_dir.save_accepted, server.config)
