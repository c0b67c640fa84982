"""Read-only admin endpoints for migration progress, merged across workers.

=========================== ==========================================================
``GET /api/status``         the status model (``progress.status.StatusJSON``): overall
                            share, one row per route, backlog top 50, decommission
``GET /api/backlog?limit=N`` the remaining legacy surface, ranked (all without ``limit``)
``GET /api/decommission``   routes and endpoints whose legacy side has been idle
=========================== ==========================================================

Each call reads the other workers' state files (in a thread) and merges them with
this worker's live counters, so the figures are the same whichever worker answers.
No token: nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.progress import ProgressState, ProgressTracker, merge_states
from strangler.progress.status import backlog_model, decommission_model, status_model
from strangler.runtime import Snapshot, SnapshotHolder

__all__ = ["PROGRESS_API", "ProgressApi", "add_progress_routes"]

MAX_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class ProgressApi:
    tracker: ProgressTracker
    holder: SnapshotHolder
    state_dir: Path

    async def merged(self) -> tuple[ProgressState, Snapshot, float]:
        """(every worker's state merged, the snapshot it was attributed to, now)."""
        snap = self.holder.current
        self.tracker.reconcile(snap)
        peers = await self.tracker.refresh_peers(self.state_dir, snap)
        state = merge_states([self.tracker.export(), *peers])
        return state, snap, self.tracker.now()


PROGRESS_API: Final = web.AppKey("progress_api", ProgressApi)


def _limit(request: web.Request) -> int | None:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_LIMIT:
        raise web.HTTPBadRequest(
            text=f'{{"error": "limit must be an integer from 0 to {MAX_LIMIT}"}}',
            content_type="application/json",
        )
    return value


async def status(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    state, snap, now = await api.merged()
    return web.json_response(status_model(state, snap, now, idle_after=api.tracker.idle_after))


async def backlog(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    limit = _limit(request)
    state, snap, now = await api.merged()
    return web.json_response(backlog_model(state, snap, now, limit=limit))


async def decommission(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    state, snap, now = await api.merged()
    return web.json_response(
        decommission_model(state, snap, now, idle_after=api.tracker.idle_after)
    )


def add_progress_routes(
    app: web.Application, tracker: ProgressTracker, holder: SnapshotHolder, state_dir: Path
) -> None:
    """Add ``/api/status``, ``/api/backlog`` and ``/api/decommission`` to the admin app
    (before it starts)."""
    app[PROGRESS_API] = ProgressApi(tracker, holder, state_dir)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/backlog", backlog)
    app.router.add_get("/api/decommission", decommission)
