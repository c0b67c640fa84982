"""The autopilot's states, lock and lease in Redis, for replicas on several machines
(``state.backend: redis``). The same interface as ``MigrateStore`` (``store.Store``);
every method blocks (the runner calls them through threads).

Keys, under ``state.redis.key_prefix`` (``P``)::

    P"migrate:states"  JSON: route -> MigrationState (replaced whole, under the lock)
    P"migrate:gates"   JSON: the last evaluation's gates and figures per route
    P"migrate:lock"    the read-modify-write lock: a random token, expiring (``LOCK_TTL``)
    P"migrate:lease"   the evaluation lease: its owner, expiring after ``ttl``
    P"migrate:reading:OWNER"  each process's own counters (``figures.encode``), expiring:
                       the evaluator sums every replica's, not only its own

The lock is ``SET NX PX`` with a token and released only by its holder (a compare and
delete in one script), so a holder that died frees it when it expires. The lease is
taken, renewed and given back the same way: exactly one process of all the replicas
evaluates plans while it renews; when it stops renewing another takes over once the
lease expired. Redis unreachable: ``load`` reads as no states, ``acquire`` as not
leading (no process evaluates while nobody can tell who leads), and writes raise
``OSError``, which the runner logs and retries at its next evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Final

import redis

from strangler.migrate.machine import MigrationState
from strangler.migrate.store import parse_states

__all__ = ["LOCK_TTL", "RedisMigrateStore"]

LOCK_TTL: Final = 10.0  # seconds: a lock holder that died frees the lock after this
_WAIT: Final = 0.01  # seconds between tries for a held lock
_LOCK_WAIT: Final = 30.0  # seconds a lock is waited for before giving up (OSError)

# Set KEYS[1] to ARGV[1] for ARGV[2] ms if it is absent or already ours.
_TAKE: Final = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Delete KEYS[1] if it holds ARGV[1].
_GIVE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisMigrateStore:
    per_process = True  # replicas on other hosts: each publishes its own reading

    def __init__(self, url: str, *, key_prefix: str = "strangler:", timeout: float = 2.0) -> None:
        # host:pid, and a tag: two servers in one process are two owners too
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._states = f"{key_prefix}migrate:states"
        self._gates = f"{key_prefix}migrate:gates"
        self._lock_key = f"{key_prefix}migrate:lock"
        self._lease = f"{key_prefix}migrate:lease"
        self._reading = f"{key_prefix}migrate:reading:"
        self._take = self._client.register_script(_TAKE)
        self._give = self._client.register_script(_GIVE)

    # -- lock
    def _lock(self) -> str:
        token = uuid.uuid4().hex
        pause = threading.Event()
        for _ in range(int(_LOCK_WAIT / _WAIT)):
            try:
                if self._client.set(self._lock_key, token, nx=True, px=int(LOCK_TTL * 1000)):
                    return token
            except redis.RedisError as e:
                raise OSError(f"cannot lock the autopilot state in Redis: {e}") from e
            pause.wait(_WAIT)  # a wait in a worker thread for another holder's release
        raise OSError(f"the autopilot state lock in Redis was held for over {_LOCK_WAIT:g}s")

    def _unlock(self, token: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self._give(keys=[self._lock_key], args=[token])

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        token = self._lock()
        try:
            yield
        finally:
            self._unlock(token)

    @contextlib.asynccontextmanager
    async def alocked(self) -> AsyncIterator[None]:
        taking = asyncio.get_running_loop().run_in_executor(None, self._lock)
        try:
            token = await asyncio.shield(taking)
        except asyncio.CancelledError:  # give back what the thread still gets
            taking.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else self._unlock(f.result())
            )
            raise
        try:
            yield
        finally:
            await asyncio.to_thread(self._unlock, token)

    # -- states
    def load(self) -> dict[str, MigrationState]:
        return parse_states(self._get(self._states))

    def save(self, states: Mapping[str, MigrationState]) -> None:
        self._set(self._states, {r: s.as_dict() for r, s in sorted(states.items())})

    def save_gates(self, gates: Mapping[str, object]) -> None:
        self._set(self._gates, dict(gates))

    def load_gates(self) -> dict[str, object]:
        raw = self._get(self._gates)
        return raw if isinstance(raw, dict) else {}

    def _get(self, key: str) -> object:
        try:
            text = self._client.get(key)
            return None if text is None else json.loads(text)
        except (redis.RedisError, ValueError):
            return None

    def _set(self, key: str, value: object) -> None:
        try:
            self._client.set(key, json.dumps(value))
        except redis.RedisError as e:
            raise OSError(f"cannot write the autopilot state to Redis: {e}") from e

    # -- lease
    def acquire(self, now: float, ttl: float) -> bool:
        try:
            return bool(self._take(keys=[self._lease], args=[self.owner, int(ttl * 1000)]))
        except redis.RedisError:
            return False

    def leader(self, now: float) -> str | None:
        try:
            held = self._client.get(self._lease)
        except redis.RedisError:
            return None
        return None if held is None else held.decode() if isinstance(held, bytes) else str(held)

    def release(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            self._give(keys=[self._lease], args=[self.owner])
        return True  # Redis unreachable: the lease expires, nothing to wait for

    # -- readings
    def publish_reading(self, reading: str, ttl: float) -> None:
        """Publish this process's reading for ``ttl`` seconds (lost: the next one)."""
        with contextlib.suppress(redis.RedisError):
            self._client.set(self._reading + self.owner, reading, px=int(ttl * 1000))

    def readings(self) -> dict[str, str]:
        """Every live process's last reading (owner -> JSON); ``{}`` without Redis."""
        try:
            keys = list(self._client.scan_iter(match=_glob_escape(self._reading) + "*"))
            values = self._client.mget(keys) if keys else []
        except redis.RedisError:
            return {}
        n = len(self._reading)
        return {
            (k.decode() if isinstance(k, bytes) else str(k))[n:]: v.decode()
            if isinstance(v, bytes)
            else str(v)
            for k, v in zip(keys, values, strict=True)
            if v is not None  # expired between the scan and the read
        }

    def close(self) -> None:
        self._client.close()


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
