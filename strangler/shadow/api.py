"""Admin endpoints for shadow results (read-only, so no token is needed).

``GET /api/shadow``: every route with shadow, one summary each::

    {"since": 1700000000.0, "routes": [{"route": "invoices", "compared": 120,
     "matches": 96, "mismatches": 24, "parity": 0.8, "errors": 1, "dropped": 0,
     "skipped": 0, "truncated": 0, "mismatches_by_kind": {"status": 0, "header": 0,
     "body": 24}, "duration_mean": 0.004, "duration_max": 0.02, "noisy_paths": 0}]}

``GET /api/shadow/{route}``: the summary plus ``top_paths`` (the most frequent
differing JSON paths, indices as ``[*]``), ``noise`` (what noise mode learned) and
``samples`` (the latest mismatches and errors, newest first, redacted). An unknown
route is a 404 that lists the known ones. ``?top=N`` (1..200) sets how many paths.

With ``--workers N`` each worker compares what it mirrored, and whichever worker takes
the connection answers with every worker's figures merged (``shared``): the same
answer from each, including comparisons finished elsewhere up to 0.1 s ago.
"""

from __future__ import annotations

from aiohttp import web

from strangler.shadow.samples import MAX_TRACKED_PATHS, ShadowResults
from strangler.shadow.shared import SharedResults

__all__ = ["SHADOW_RESULTS", "add_shadow_routes"]

SHADOW_RESULTS = web.AppKey("shadow_results", SharedResults)


async def shadow_summary(request: web.Request) -> web.Response:
    return web.json_response(request.app[SHADOW_RESULTS].summary())


async def shadow_route(request: web.Request) -> web.Response:
    results = request.app[SHADOW_RESULTS]
    name = request.match_info["route"]
    try:
        top = int(request.query.get("top", "20"))
    except ValueError:
        top = 0
    if not 1 <= top <= MAX_TRACKED_PATHS:
        return web.json_response(
            {"error": f"top must be a whole number from 1 to {MAX_TRACKED_PATHS}"}, status=400
        )
    detail = results.detail(name, top)
    if detail is None:
        return web.json_response(
            {
                "error": f"no shadow results for route {name!r}",
                "routes": results.routes,
            },
            status=404,
        )
    return web.json_response(detail)


def add_shadow_routes(app: web.Application, results: ShadowResults | SharedResults) -> None:
    """Register ``GET /api/shadow`` and ``GET /api/shadow/{route}`` on the admin app
    (before it starts). ``results``: one process's own, or shared by workers."""
    if isinstance(results, ShadowResults):
        results = SharedResults(results, None)
    app[SHADOW_RESULTS] = results
    app.router.add_get("/api/shadow", shadow_summary)
    app.router.add_get("/api/shadow/{route}", shadow_route)
