"""The routing part of a loaded config as JSON, and back: what ``--admin`` plans against.

``GET /api/plan/config`` on the admin port answers ``config_to_json`` of the config
the proxy is serving *now* (its snapshot in memory), so ``strangler plan --admin URL``
plans against exactly what runs, even when the files on disk were edited since the
last reload, or live on another machine. It carries what decides a request's route
and backend: upstream names and URLs; per route its name, owner, match, ``to``,
canary (target and share) and ``fallback.to``. Translation, shadow, SLO and override
settings are left out: they never change which route a request matches.

>>> from strangler.config import load_config_text
>>> cfg = load_config_text('''
... upstreams: {legacy: http://127.0.0.1:8000, users: http://127.0.0.1:9000}
... routes:
...   - {name: u, owner: t, match: {path: "/users/{id}", headers: {x-beta: "1"}}, to: users}
... ''')
>>> back = config_from_json(config_to_json(cfg))
>>> back.routes[0].match == cfg.routes[0].match, back.version == cfg.version
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from strangler.config.model import Canary, Config, MatchSpec, Route, Upstream, ValueMatch

__all__ = ["WireError", "config_from_json", "config_to_json"]


class WireError(ValueError):
    """The admin API answered a config document this version cannot read."""


def _values(conds: Mapping[str, ValueMatch]) -> dict[str, dict[str, object]]:
    return {k: {"present": v.present, "value": v.value} for k, v in conds.items()}


def _match(m: MatchSpec) -> dict[str, object]:
    return {
        "path": m.path,
        "path_prefix": m.path_prefix,
        "methods": sorted(m.methods) if m.methods is not None else None,
        "host": m.host,
        "headers": _values(m.headers),
        "query": _values(m.query),
        "cookies": _values(m.cookies),
        "query_only": sorted(m.query_only) if m.query_only is not None else None,
    }


def config_to_json(config: Config) -> dict[str, object]:
    return {
        "version": config.version,
        "files": list(config.files),
        "upstreams": {name: u.url for name, u in config.upstreams.items()},
        "routes": [
            {
                "name": r.name,
                "owner": r.owner,
                "match": _match(r.match),
                "to": r.to,
                "canary": (
                    {"to": r.canary.to, "ratio": r.canary.ratio} if r.canary is not None else None
                ),
                "fallback_to": r.fallback.to,
            }
            for r in config.routes
        ],
    }


def _str(doc: Mapping[str, object], key: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str):
        raise WireError(f"expected a string at {key!r}")
    return v


def _opt_str(doc: Mapping[str, object], key: str) -> str | None:
    v = doc.get(key)
    return v if isinstance(v, str) else None


def _map(v: object, what: str) -> Mapping[str, object]:
    if not isinstance(v, dict):
        raise WireError(f"expected an object at {what!r}")
    return v


def _conds(v: object, what: str) -> Mapping[str, ValueMatch]:
    out: dict[str, ValueMatch] = {}
    for name, c in _map(v or {}, what).items():
        c = _map(c, f"{what}.{name}")
        out[name] = ValueMatch(present=bool(c.get("present", True)), value=_opt_str(c, "value"))
    return MappingProxyType(out)


def _names(v: object) -> frozenset[str] | None:
    return None if v is None else frozenset(str(x) for x in v) if isinstance(v, list) else None


def _route(index: int, doc: Mapping[str, object]) -> Route:
    m = _map(doc.get("match"), "match")
    match = MatchSpec(
        path=_opt_str(m, "path"),
        path_prefix=_opt_str(m, "path_prefix"),
        methods=_names(m.get("methods")),
        host=_opt_str(m, "host"),
        headers=_conds(m.get("headers"), "headers"),
        query=_conds(m.get("query"), "query"),
        cookies=_conds(m.get("cookies"), "cookies"),
        query_only=_names(m.get("query_only")),
    )
    canary = None
    if doc.get("canary") is not None:
        c = _map(doc["canary"], "canary")
        ratio = c.get("ratio")
        if not isinstance(ratio, int | float):
            raise WireError("expected a number at 'canary.ratio'")
        canary = Canary(to=_str(c, "to"), ratio=float(ratio))
    route = Route(
        name=_str(doc, "name"),
        owner=_str(doc, "owner"),
        match=match,
        to=_str(doc, "to"),
        index=index,
        canary=canary,
    )
    fallback_to = _opt_str(doc, "fallback_to")
    if fallback_to is not None:
        route = dataclasses.replace(
            route, fallback=dataclasses.replace(route.fallback, to=fallback_to)
        )
    return route


def config_from_json(doc: Mapping[str, object]) -> Config:
    """The ``Config`` a ``config_to_json`` document describes; raise ``WireError``."""
    try:
        ups = _map(doc.get("upstreams"), "upstreams")
        routes = doc.get("routes")
        if not isinstance(routes, list):
            raise WireError("expected a list at 'routes'")
        files = doc.get("files")
        return Config(
            upstreams=MappingProxyType(
                {name: Upstream(name=name, url=str(url)) for name, url in ups.items()}
            ),
            routes=tuple(_route(i, _map(r, "routes[]")) for i, r in enumerate(routes)),
            files=tuple(str(f) for f in files) if isinstance(files, list) else (),
            version=_str(doc, "version"),
        )
    except (TypeError, ValueError) as e:
        if isinstance(e, WireError):
            raise
        raise WireError(str(e)) from None
