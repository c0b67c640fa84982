"""Admin endpoints for migration progress, merged across workers.

=============================== ======================================================
``GET /api/status``             the status model (``progress.status.StatusJSON``):
                                overall share and per route, for the windows ``5m``,
                                ``1h``, ``24h`` and ``all``; endpoint coverage; backlog
                                top 50; decommission candidates
``GET /api/backlog?limit=N``    the remaining legacy surface, ranked (all without
                                ``limit``); ``all=1`` adds the endpoints that only ever
                                answered 404/405
``GET /api/decommission``       routes and endpoints whose legacy side has been idle
``GET /api/progress/history``   the migration over time (``progress.history``)
``POST /api/progress/reset``    token; ``{"route": NAME}`` or ``{}`` (every route):
                                start the figures afresh (``progress.resets``), audited
=============================== ======================================================

Every read merges this worker's counters with the other workers' state files, read
afresh (in a thread), and applies the shared resets file, so every worker answers the
same figures once each has flushed: a worker's requests reach the other workers'
answers within one flush interval (5 s).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.admin.auth import Secret, require_token
from strangler.config.model import UNROUTED
from strangler.progress import ProgressState, ProgressTracker, merge_states
from strangler.progress.history import history_model
from strangler.progress.resets import apply_resets, read_resets, record_reset
from strangler.progress.status import (
    backlog_model,
    decommission_model,
    iso,
    status_model,
    with_evidence,
)
from strangler.release.state import AuditLog
from strangler.runtime import Snapshot, SnapshotHolder

__all__ = ["PROGRESS_API", "ProgressApi", "add_progress_routes"]

MAX_LIMIT: Final = 100_000


def _json_error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


@dataclass(frozen=True, slots=True)
class ProgressApi:
    tracker: ProgressTracker
    holder: SnapshotHolder
    state_dir: Path
    token: Secret | None = None
    audit: AuditLog | None = None
    # route -> why it can be deleted beyond idleness (the autopilot's finished plans)
    evidence: Callable[[], Mapping[str, str]] | None = None

    async def candidates_evidence(self) -> Mapping[str, str]:
        return {} if self.evidence is None else await asyncio.to_thread(self.evidence)

    async def merged(self) -> tuple[ProgressState, Snapshot, float]:
        """(every worker's state merged with the resets applied, the snapshot it was
        attributed to, now)."""
        snap = self.holder.current
        self.tracker.reconcile(snap)
        peers = await self.tracker.refresh_peers(self.state_dir, snap)
        state = merge_states([self.tracker.export(), *peers])
        try:
            resets = await asyncio.to_thread(read_resets, self.state_dir)
        except (OSError, ValueError) as e:
            raise _json_error(web.HTTPInternalServerError, f"cannot read resets: {e}") from None
        apply_resets(state, resets)
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
        raise _json_error(web.HTTPBadRequest, f"limit must be an integer from 0 to {MAX_LIMIT}")
    return value


async def status(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    state, snap, now = await api.merged()
    model = status_model(state, snap, now, idle_after=api.tracker.idle_after)
    model["decommission"] = with_evidence(
        model["decommission"], await api.candidates_evidence(), state, now
    )
    return web.json_response(model)


async def backlog(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    limit = _limit(request)
    everything = request.query.get("all", "") in ("1", "true", "yes")
    state, snap, now = await api.merged()
    return web.json_response(backlog_model(state, snap, now, limit=limit, everything=everything))


async def decommission(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    state, snap, now = await api.merged()
    model = decommission_model(state, snap, now, idle_after=api.tracker.idle_after)
    model["decommission"] = with_evidence(
        model["decommission"], await api.candidates_evidence(), state, now
    )
    return web.json_response(model)


async def history(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    state, snap, now = await api.merged()
    return web.json_response(history_model(state, snap, now))


async def reset(request: web.Request) -> web.Response:
    api = request.app[PROGRESS_API]
    require_token(request, api.token)
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise _json_error(web.HTTPBadRequest, "the body must be JSON, like {}") from None
    if not isinstance(body, dict) or not isinstance(body.get("route", ""), str | None):
        raise _json_error(web.HTTPBadRequest, 'the body must be {"route": NAME} or {}')
    route = body.get("route") or None
    state, snap, now = await api.merged()
    if route is None:
        names = sorted({r.name for r in snap.routes} | state.routes.keys())
    elif snap.route(route) is None and route != UNROUTED:
        raise _json_error(web.HTTPNotFound, f"no route named {route!r} in the loaded config")
    else:
        names = [route]
    added = await asyncio.to_thread(record_reset, api.state_dir, state, names, now)
    before = {
        "requests": sum(
            state.routes[n].legacy + state.routes[n].new for n in names if n in state.routes
        )
    }
    who = f"admin@{request.remote or 'unknown'}"
    if api.audit is not None:
        await asyncio.to_thread(
            api.audit.append, who, "progress-reset", route or "*", before, {"requests": 0}
        )
    return web.json_response({"reset": sorted(added), "at": iso(now), "before": before, "who": who})


def add_progress_routes(
    app: web.Application,
    tracker: ProgressTracker,
    holder: SnapshotHolder,
    state_dir: Path,
    *,
    token: Secret | None = None,
    audit: AuditLog | None = None,
    evidence: Callable[[], Mapping[str, str]] | None = None,
) -> None:
    """Add the progress endpoints (see the module docstring) to the admin app (before
    it starts). Without ``token`` the reset is refused (403). ``evidence``: routes that
    are deletion candidates on another's word (the autopilot), with why."""
    app[PROGRESS_API] = ProgressApi(tracker, holder, state_dir, token, audit, evidence)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/backlog", backlog)
    app.router.add_get("/api/decommission", decommission)
    app.router.add_get("/api/progress/history", history)
    app.router.add_post("/api/progress/reset", reset)
