"""The admin HTTP API: ``/healthz``, ``/readyz``, ``/metrics`` and ``POST /reload``.

Reads are open (the listener is bound to 127.0.0.1 by default); every write needs the
bearer token (``auth``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from strangler.admin.auth import Secret, require_token
from strangler.metrics import Metrics
from strangler.runtime import SnapshotHolder


@dataclass(slots=True)
class AdminState:
    """What the admin API reads and triggers; owned by the server."""

    holder: SnapshotHolder
    metrics: Metrics
    token: Secret | None
    reload: Callable[[], Awaitable[tuple[str, str]]]  # → (result, message)
    draining: bool = False
    state_store: Callable[[], dict[str, object]] | None = None  # RedisStateStore.status
    # --workers N: the supervisor (the process to signal) and the live workers' pids.
    supervisor_pid: int | None = None
    workers: Callable[[], list[int]] | None = None


ADMIN_STATE = web.AppKey("admin_state", AdminState)


def _summary(state: AdminState) -> dict[str, object]:
    snap = state.holder.current
    return {
        "version": snap.version,
        "generation": state.holder.generation,
        # The process to signal (SIGHUP, SIGTERM): the supervisor with --workers N.
        "pid": state.supervisor_pid or os.getpid(),
        "worker_pid": os.getpid(),  # the process that answered
        "workers": state.workers() if state.workers is not None else [os.getpid()],
        "routes": len(snap.routes),
        "upstreams": sorted(snap.config.upstreams),
        "files": list(snap.config.files),
    }


async def healthz(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    return web.json_response({"status": "ok", "version": state.holder.current.version})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    body = {"ready": not state.draining, **_summary(state)}
    if state.state_store is not None:
        # Details only: a replica whose store is down keeps serving the state it knew,
        # so readiness does not hang on it (taking every replica out would be worse).
        body["state_store"] = state.state_store()
    return web.json_response(body, status=503 if state.draining else 200)


async def reload(request: web.Request) -> web.Response:
    state = request.app[ADMIN_STATE]
    require_token(request, state.token)
    result, message = await state.reload()
    status = 422 if result == "rejected" else 200
    return web.json_response(
        {"result": result, "message": message, "version": state.holder.current.version},
        status=status,
    )


def build_admin_app(state: AdminState) -> web.Application:
    app = web.Application()
    app[ADMIN_STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry=state.metrics.exposition()))
    app.router.add_post("/reload", reload)
    return app
