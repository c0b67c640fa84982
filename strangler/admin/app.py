"""The admin HTTP API: ``/healthz``, ``/readyz``, ``/metrics`` and ``POST /reload``.

Reads are open (the listener is bound to 127.0.0.1 by default; ``auth.check_exposure``
refuses to start a reachable one without a token unless ``admin.allow_public_reads``);
every write needs the bearer token (``auth``).

Query parameters are checked for every admin endpoint against ``openapi.yaml`` (which
a test keeps complete) before the handler runs: an undocumented parameter or one given
twice answers 400 with one line; each handler checks its values the same way
(``/api/events?limit=-1``: ``limit must be a whole number from 1 to 1000``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml
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


OPENAPI_DOC: Final = Path(__file__).with_name("openapi.yaml")


@dataclass(frozen=True, slots=True)
class QueryRules:
    """(path template, method) -> query parameter name -> its OpenAPI schema."""

    by_operation: Mapping[tuple[str, str], Mapping[str, Mapping[str, object]]]


QUERY_RULES = web.AppKey("query_rules", QueryRules)


def query_rules(document: Path = OPENAPI_DOC) -> QueryRules:
    """Every operation's documented query parameters, from the OpenAPI document."""
    doc = yaml.safe_load(document.read_text(encoding="utf-8"))
    rules: dict[tuple[str, str], Mapping[str, Mapping[str, object]]] = {}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            params = {
                str(p["name"]): MappingProxyType(dict(p.get("schema") or {}))
                for p in (op.get("parameters") or [])
                if p.get("in") == "query"
            }
            rules[(path, method.upper())] = MappingProxyType(params)
    return QueryRules(MappingProxyType(rules))


def query_problem(names: list[str], rules: Mapping[str, Mapping[str, object]]) -> str | None:
    """What is wrong with a request's query parameter names, in one line, or ``None``.
    Values are the handler's to check (each answers 400 with its own reason).

    >>> rules = {"limit": {"type": "integer"}, "name[]": {"type": "array"}}
    >>> query_problem(["lmit"], rules)
    "unknown query parameter 'lmit' (this endpoint takes: limit, name[])"
    >>> query_problem(["limit", "limit"], rules), query_problem(["name[]", "name[]"], rules)
    ("query parameter 'limit' is given more than once", None)
    """
    for name in dict.fromkeys(names):
        schema = rules.get(name)
        if schema is None:
            takes = ", ".join(rules) or "none"
            return f"unknown query parameter {name[:40]!r} (this endpoint takes: {takes})"
        if schema.get("type") != "array" and names.count(name) > 1:
            return f"query parameter {name!r} is given more than once"
    return None


@web.middleware
async def _checked_query(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    resource = request.match_info.route.resource
    if request.query and resource is not None:
        info = resource.get_info()
        path = str(info.get("path") or info.get("formatter"))
        method = "GET" if request.method == "HEAD" else request.method
        rules = request.app[QUERY_RULES].by_operation.get((path, method))
        if rules is not None:  # None: no such route, aiohttp answers 404/405
            problem = query_problem([name for name, _ in request.query.items()], rules)
            if problem is not None:
                raise web.HTTPBadRequest(text=problem + "\n")
    return await handler(request)


def build_admin_app(state: AdminState) -> web.Application:
    app = web.Application(middlewares=[_checked_query])
    app[ADMIN_STATE] = state
    app[QUERY_RULES] = query_rules()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry=state.metrics.exposition()))
    app.router.add_post("/reload", reload)
    return app
