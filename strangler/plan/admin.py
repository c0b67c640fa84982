"""The plan's part of the admin API.

* ``GET /api/plan/config`` (read, no token): the routing part of the config being
  served, as ``plan.wire.config_to_json`` (what ``strangler plan --admin`` plans
  against), plus ``runtime``: per route the release state that survives a reload.
* ``POST /api/plan/record`` (token) ``{"rate": 0.1, "max": 10000, "seconds": 600}``:
  start recording a sample (``plan.record``); replaces a recording in progress.
* ``GET /api/plan/record`` (read): ``{"recording", "count", "limit", "full"}``.
* ``POST /api/plan/record/stop`` (token): stop and answer ``{"samples": [...]}``.

Each worker of ``--workers N`` has its own admin listener on the shared port and its
own sampler: every answer carries the worker's ``pid``, and ``strangler plan
--record`` keeps one connection open so that start, polls and stop reach the same
worker (the sample is then that worker's share of the traffic).
"""

from __future__ import annotations

import json
import os
from typing import Final

from aiohttp import web

from strangler.admin.app import ADMIN_STATE
from strangler.admin.auth import require_token
from strangler.plan.record import MAX_SAMPLES, MAX_SECONDS, Recording, Sampler, route_header_names
from strangler.plan.wire import config_to_json
from strangler.release.controls import ReleaseControls, effective_new_ratio
from strangler.runtime import SnapshotHolder

__all__ = ["add_plan_routes"]

RECORDING: Final = web.AppKey("plan_recording", Recording)
PLAN_HOLDER: Final = web.AppKey("plan_holder", SnapshotHolder)
PLAN_RELEASE: Final = web.AppKey("plan_release", ReleaseControls)


def _runtime(holder: SnapshotHolder, controls: ReleaseControls) -> dict[str, str]:
    """Per route, a note on runtime release state that differs from its config."""
    out: dict[str, str] = {}
    for route in holder.current.routes:
        state = controls.state.for_route(route.name)
        if state.killed:
            out[route.name] = "rolled back to legacy (kill switch on)"
        elif state.guard_tripped:
            out[route.name] = "rolled back by its SLO guard"
        elif state.percent_override is not None:
            pct = effective_new_ratio(route, state) * 100.0
            out[route.name] = f"canary percent overridden to {pct:g}%"
    return out


async def plan_config(request: web.Request) -> web.Response:
    holder = request.app[PLAN_HOLDER]
    doc = config_to_json(holder.current.config)
    doc["runtime"] = _runtime(holder, request.app[PLAN_RELEASE])
    return web.json_response(doc)


def _number(body: dict[str, object], key: str, default: float, low: float, high: float) -> float:
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not low < v <= high:
        raise web.HTTPBadRequest(text=f"'{key}' must be a number in ({low:g}, {high:g}]\n")
    return float(v)


async def start_recording(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be a JSON object\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    rate = _number(body, "rate", 1.0, 0.0, 1.0)
    limit = int(_number(body, "max", 10_000, 0, MAX_SAMPLES))
    seconds = _number(body, "seconds", 600.0, 0.0, MAX_SECONDS)
    headers = route_header_names(request.app[PLAN_HOLDER].current)
    request.app[RECORDING].sampler = Sampler(rate, limit, seconds, headers)
    return web.json_response(
        {"recording": True, "rate": rate, "max": limit, "seconds": seconds, "pid": os.getpid()}
    )


async def recording_status(request: web.Request) -> web.Response:
    s = request.app[RECORDING].sampler
    pid = os.getpid()
    if s is None:
        return web.json_response(
            {"recording": False, "count": 0, "limit": 0, "full": False, "pid": pid}
        )
    return web.json_response(
        {"recording": True, "count": len(s.samples), "limit": s.limit, "full": s.full, "pid": pid}
    )


async def stop_recording(request: web.Request) -> web.Response:
    require_token(request, request.app[ADMIN_STATE].token)
    rec = request.app[RECORDING]
    s, rec.sampler = rec.sampler, None
    return web.json_response(
        {
            "samples": s.samples if s is not None else [],
            "recording": s is not None,
            "pid": os.getpid(),
        }
    )


def add_plan_routes(
    app: web.Application,
    holder: SnapshotHolder,
    controls: ReleaseControls,
    recording: Recording,
) -> None:
    app[PLAN_HOLDER] = holder
    app[PLAN_RELEASE] = controls
    app[RECORDING] = recording
    app.router.add_get("/api/plan/config", plan_config)
    app.router.add_post("/api/plan/record", start_recording)
    app.router.add_get("/api/plan/record", recording_status)
    app.router.add_post("/api/plan/record/stop", stop_recording)
