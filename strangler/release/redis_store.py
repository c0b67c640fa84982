"""Release state in Redis, so replicas on several machines share it (``state.backend: redis``).

``RedisStateStore`` is a ``StateStore`` (``state.py``) like ``FileStateStore``: its
methods block and are called through ``asyncio.to_thread``. What it keeps, under
``state.redis.key_prefix`` (``P``, default ``strangler:``)::

    P"routes"   hash: route name -> {"killed": true, "percent_override": null, ...}
                (RouteState.to_dict() as JSON; routes in their default state are absent)
    P"version"  integer, INCR'd by every write in the same transaction (missing = 0)
    P"changes"  pub/sub channel: every write publishes {"writer": ID, "route": NAME}
                in the same transaction (NAME "*" when it wrote several routes)

Guarantees:

- ``update`` is atomic across replicas: an optimistic transaction (``WATCH`` both
  keys, read, apply the change, ``MULTI``/``EXEC``), retried when another writer got
  in between, so two replicas changing two routes at once lose neither change.
  ``update_routes`` writes several routes (a canary group) in one such transaction,
  so no replica ever loads half of a group's change. The
  ``change`` callable may run more than once: it must only set fields.
- ``load`` reads the hash and the version in one ``MULTI``/``EXEC`` (a consistent
  pair); ``changed`` is one ``GET`` of the version, compared with the last one this
  store read or wrote; it also says True once ``resync`` seconds have passed since
  the last full read, so a replica converges however a change was missed.
- ``subscribe()`` (async) yields when another writer published: a replica can
  ``sync`` at once (a few milliseconds) instead of at its next ``file_poll``.
- Losing Redis: ``load``, ``changed``, ``update`` and ``save`` raise
  ``StateStoreUnavailable`` (a ``StateFileError``: the caller keeps serving with the
  state it has) and ``healthy`` turns False with ``last_error`` saying why; the next
  successful call turns it back. Nothing is cached for writes: an admin write while
  Redis is down fails, it never pretends.
- Redis coming back **empty** (restarted without persistence) while this store had
  seen a version: the first replica to notice writes back the state it last saw,
  under that version (``WATCH``: only if the version key is still missing), and logs
  it. Persistence is Redis's job: run it with ``appendonly yes`` in production; the
  write-back only covers a restart that lost everything. A Redis that comes back
  with an *older* version (restored from an old snapshot) is believed, with a
  warning. To reset the state, enable the routes (``strangler enable``); flushing
  Redis under running replicas puts their last state back.

>>> RedisStateStore("redis://:secret@cache:6379/0").status()["url"]
'redis://:***@cache:6379/0'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Final, final

import redis
import redis.asyncio as aioredis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from strangler.config.model import RedisState
from strangler.config.validate import mask_url_password
from strangler.release.state import RouteState, StateChange, StateFileError, _change

__all__ = ["ALL", "RedisStateStore", "StateStoreCollector", "StateStoreUnavailable"]

log = logging.getLogger("strangler.release.redis")

ALL: Final = "*"
"""What ``subscribe()`` yields when any route may have changed."""
TIMEOUT: Final = 2.0
"""Seconds a Redis connect or command may take before it counts as a failure."""
MAX_ATTEMPTS: Final = 100
"""Optimistic transaction attempts before ``update`` gives up (heavy contention)."""
_RECONNECT_MIN: Final = 0.05
_RECONNECT_MAX: Final = 2.0
_LISTEN_TICK: Final = 1.0  # seconds a pub/sub read waits before looking at the health check
_HEALTH_CHECK: Final = 5  # seconds between PINGs on an idle pub/sub connection


class StateStoreUnavailable(StateFileError):
    """Redis could not be reached, refused the command, or stayed too contended.

    What Redis holds is unknown: a reader keeps the state it has; a write was not
    confirmed (the admin API answers 503).
    """


@final
class RedisStateStore:
    """The ``StateStore`` kept in Redis, shared by every replica pointing at it.

    ``url`` as ``state.redis.url``; ``key_prefix`` starts every key and the channel;
    ``resync``: seconds after which ``changed()`` asks for a full re-read anyway.
    ``clock`` (monotonic) times resyncs; ``wall`` stamps ``last_sync``.
    """

    __slots__ = (
        "_channel",
        "_client",
        "_clock",
        "_known",
        "_last_load",
        "_lock",
        "_routes_key",
        "_seen",
        "_timeout",
        "_url",
        "_version_key",
        "_wall",
        "healthy",
        "key_prefix",
        "last_error",
        "last_sync",
        "resync",
        "writer",
    )

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "strangler:",
        resync: float = 5.0,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self.key_prefix = key_prefix
        self.resync = resync
        self._routes_key = f"{key_prefix}routes"
        self._version_key = f"{key_prefix}version"
        self._channel = f"{key_prefix}changes"
        self._clock = clock
        self._wall = wall
        # One quick retry: a pooled connection is stale after a Redis restart.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
        )
        self._timeout = timeout
        self._lock = threading.Lock()
        self._seen = 0  # the version this store last read or wrote
        self._known: dict[str, RouteState] = {}  # what it held at that version
        self._last_load: float | None = None  # clock() of the last full read
        self.writer = uuid.uuid4().hex  # names this store's messages on the channel
        self.healthy = False
        """The last call reached Redis and got the state (False until the first)."""
        self.last_error: str | None = None
        """Why the last failing call failed; ``None`` once a call succeeds again."""
        self.last_sync: float | None = None
        """Wall time (epoch seconds) this store last knew it held Redis's state."""

    @classmethod
    def from_config(cls, settings: RedisState) -> RedisStateStore:
        """The store for ``config.state.redis``."""
        return cls(settings.url, key_prefix=settings.key_prefix, resync=settings.resync)

    # -- StateStore ------------------------------------------------------------------
    def load(self) -> dict[str, RouteState]:
        with self._talking("read the release state from"):
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self._version_key)
            pipe.hgetall(self._routes_key)
            raw_version, raw_routes = pipe.execute()
            version = _version(raw_version)
            if raw_version is None and self._seen > 0:
                restored = self._restore()
                if restored is not None:
                    return restored
                return self.load()  # someone else wrote (or restored) meanwhile
            if version < self._seen:
                log.warning(
                    "Redis holds release state version %d, older than the %d this replica "
                    "saw (restored from an old snapshot?); using what Redis holds",
                    version,
                    self._seen,
                )
            routes = self._parse(raw_routes)
        self._stored(version, routes, loaded=True)
        return {n: s.copy() for n, s in routes.items()}

    def save(self, routes: Mapping[str, RouteState]) -> None:
        keep = {n: s.copy() for n, s in routes.items() if not s.is_default}
        with self._talking("write the release state to"):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._routes_key)
            if keep:
                pipe.hset(self._routes_key, mapping={n: _dumps(s) for n, s in keep.items()})
            pipe.incr(self._version_key)
            pipe.publish(self._channel, self._message(ALL))
            version = int(pipe.execute()[-2])
        self._stored(version, keep, loaded=False)

    def update(self, route: str, change: Callable[[RouteState], None]) -> StateChange:
        return self.update_routes((route,), change)[0]

    def update_routes(
        self, routes: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange]:
        """Every route of ``routes`` in one ``MULTI``/``EXEC``: a reader (``load`` is
        one transaction too) sees all of them changed or none."""
        with self._talking("write the release state to"):
            for attempt in range(MAX_ATTEMPTS):
                try:
                    result = self._try_update(routes, change)
                except WatchError:
                    # Another writer got in between: read again, after a random pause
                    # that grows (to 50 ms), so two writers in step do not collide forever.
                    # (update_routes runs in a worker thread: asyncio.to_thread)
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: TID251
                    continue
                if result is not None:
                    return result
            raise StateStoreUnavailable(
                f"gave up changing {', '.join(map(repr, routes))} after {MAX_ATTEMPTS} "
                f"attempts: the keys under {self.key_prefix!r} change too often"
            )

    def changed(self) -> bool:
        with self._talking("read the release state version from"):
            version = _version(self._client.get(self._version_key))
        with self._lock:
            if version == self._seen:
                self.last_sync = self._wall()
            due = self._last_load is None or self._clock() - self._last_load >= self.resync
            return version != self._seen or due

    # -- health ----------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version this store last read or wrote (0: nothing stored yet)."""
        return self._seen

    @property
    def url(self) -> str:
        """``state.redis.url`` with its password masked."""
        return mask_url_password(self._url)

    def status(self) -> dict[str, object]:
        """For ``/readyz`` details: backend, where, healthy, why not, how fresh."""
        return {
            "backend": "redis",
            "url": self.url,
            "key_prefix": self.key_prefix,
            "healthy": self.healthy,
            "last_error": self.last_error,
            "last_sync": self.last_sync,
            "version": self._seen,
        }

    def close(self) -> None:
        """Close the pooled connections (the store can still be used: it reconnects)."""
        self._client.close()

    # -- change notifications --------------------------------------------------------
    async def subscribe(self) -> AsyncIterator[str]:
        """Yield ``"*"`` once subscribed, then the route name of each change another
        writer made (``"*"``: possibly every route).

        Runs until the consumer stops (cancel its task, or ``aclose()`` the iterator).
        A lost connection is retried with a growing pause (up to 2 s); after each
        (re)subscription it yields ``"*"`` again, since messages may have been missed.
        A message only says "look now": the caller reads the state itself
        (``ReleaseControls.sync``). This store's own writes are not reported.
        """
        pause = _RECONNECT_MIN
        lost = False  # log an outage once, not every retry
        client = aioredis.Redis.from_url(
            self._url, health_check_interval=_HEALTH_CHECK, socket_connect_timeout=self._timeout
        )
        try:
            while True:
                try:
                    async with client.pubsub() as pubsub:
                        await pubsub.subscribe(self._channel)
                        while await pubsub.get_message(timeout=_LISTEN_TICK) is None:
                            pass  # until Redis confirms the subscription
                        if lost:
                            log.info("release state change channel is back")
                        pause, lost = _RECONNECT_MIN, False
                        yield ALL
                        while True:
                            message = await pubsub.get_message(
                                ignore_subscribe_messages=True, timeout=_LISTEN_TICK
                            )
                            route = None if message is None else self._from_other(message)
                            if route is not None:
                                yield route
                except (RedisError, OSError) as err:
                    if not lost:
                        log.warning(
                            "release state change channel lost (%s); resubscribing",
                            _describe(err),
                        )
                    lost = True
                await asyncio.sleep(pause)  # a back-off, not a wait for an event
                pause = min(pause * 2, _RECONNECT_MAX)
        finally:
            await client.aclose()

    def _from_other(self, message: Mapping[str, object]) -> str | None:
        """The route a change published by another writer names; ``None`` for this
        store's own changes. One that cannot be read counts as ``"*"``: look anyway."""
        if message.get("type") != "message":
            return None
        data = message.get("data")
        try:
            body = json.loads(data) if isinstance(data, bytes | str) else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return ALL
        if body.get("writer") == self.writer:
            return None
        route = body.get("route")
        return route if isinstance(route, str) else ALL

    # -- internals -------------------------------------------------------------------
    def _try_update(
        self, names: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange] | None:
        """One optimistic attempt; ``None`` after writing back a lost state (retry)."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(self._version_key, self._routes_key)  # type: ignore[no-untyped-call]
            raw_version = pipe.get(self._version_key)
            if raw_version is None and self._seen > 0:
                pipe.unwatch()
                self._restore()
                return None
            results = _change(self._parse(pipe.hgetall(self._routes_key)), names, change)
            if not results:
                pipe.unwatch()
                return []
            pipe.multi()
            for step in results:
                if step.after.is_default:
                    pipe.hdel(self._routes_key, step.route)
                else:
                    pipe.hset(self._routes_key, step.route, _dumps(step.after))
            pipe.incr(self._version_key)
            pipe.publish(
                self._channel, self._message(results[0].route if len(results) == 1 else ALL)
            )
            version = int(pipe.execute()[-2])
        self._stored(version, results[0].routes, loaded=True)
        return results

    def _restore(self) -> dict[str, RouteState] | None:
        """Redis lost everything: write back what this store last saw, under the version
        it last saw, unless another replica did first (then ``None``)."""
        with self._lock:
            version, known = self._seen, {n: s.copy() for n, s in self._known.items()}
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(self._version_key)  # type: ignore[no-untyped-call]
            if pipe.exists(self._version_key):
                pipe.unwatch()
                return None
            pipe.multi()
            pipe.delete(self._routes_key)
            if known:
                pipe.hset(self._routes_key, mapping={n: _dumps(s) for n, s in known.items()})
            pipe.set(self._version_key, version)
            pipe.publish(self._channel, self._message(ALL))
            try:
                pipe.execute()
            except WatchError:
                return None
        log.error(
            "Redis had lost the release state (restarted without persistence? run it with "
            "appendonly yes); wrote back this replica's last known state, version %d, "
            "%d route(s) changed from their config",
            version,
            len(known),
        )
        self._stored(version, known, loaded=True)
        return {n: s.copy() for n, s in known.items()}

    def _stored(self, version: int, routes: Mapping[str, RouteState], *, loaded: bool) -> None:
        with self._lock:
            self._seen = version
            self._known = {n: s.copy() for n, s in routes.items()}
            self.last_sync = self._wall()
            if loaded:
                self._last_load = self._clock()

    def _parse(self, raw: Mapping[bytes | str, bytes | str]) -> dict[str, RouteState]:
        routes: dict[str, RouteState] = {}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            what = f"Redis hash {self._routes_key!r}, route {name!r}"
            try:
                data = json.loads(value)
            except (ValueError, UnicodeDecodeError):
                raise StateFileError(f"{what} is not valid JSON") from None
            state = RouteState.from_dict(data, what=what)
            if not state.is_default:
                routes[name] = state
        return routes

    def _message(self, route: str) -> str:
        return json.dumps({"writer": self.writer, "route": route})

    @contextlib.contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        """Record the outcome in ``healthy``/``last_error``; turn Redis's errors into
        ``StateStoreUnavailable`` (a ``StateFileError``)."""
        try:
            yield
        except (RedisError, OSError) as err:
            message = f"cannot {doing} Redis at {self.url}: {_describe(err)}"
            self._failed(message)
            raise StateStoreUnavailable(message) from err
        except StateFileError as err:
            self._failed(str(err))
            raise
        with self._lock:
            self.healthy = True
            self.last_error = None

    def _failed(self, message: str) -> None:
        with self._lock:
            self.healthy = False
            self.last_error = message
            self._last_load = None  # cut off: once back, ``changed()`` asks for a full read


@final
class StateStoreCollector:
    """Scrape-time metrics of a ``RedisStateStore`` (this process's view of it).

    ``strangler_state_store_up{backend}``: 1 while the last call to the store worked;
    ``strangler_state_store_last_sync_timestamp_seconds{backend}``: when this process
    last knew it held the store's state (absent before the first time). Alert on
    ``strangler_state_store_up == 0`` or on ``time() - ..._last_sync_timestamp_seconds``
    growing past a few ``file_poll``s: that replica serves from a state it cannot refresh.
    """

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "strangler_state_store_up",
                "1 while the release state store answered the last call, else 0.",
                labels=("backend",),
            ),
            GaugeMetricFamily(
                "strangler_state_store_last_sync_timestamp_seconds",
                "When this process last knew it held the store's release state.",
                labels=("backend",),
            ),
        )

    def collect(self) -> Iterator[Metric]:
        up, synced = self._families()
        up.add_metric(["redis"], 1.0 if self._store.healthy else 0.0)
        if self._store.last_sync is not None:
            synced.add_metric(["redis"], self._store.last_sync)
        yield up
        yield synced


def _version(raw: object) -> int:
    if raw is None:
        return 0
    if isinstance(raw, bytes | str):
        try:
            return int(raw)
        except ValueError:
            pass
    raise StateFileError(f"the release state version in Redis is not a number: {raw!r}")


def _dumps(state: RouteState) -> str:
    return json.dumps(state.to_dict(), sort_keys=True)


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__
