"""``strangler routes | set | rollback | enable``: the release dials, from a terminal.

They talk to a running proxy's admin API (``--admin``, default
``http://127.0.0.1:8081``). Writes send the bearer token from ``--token-file`` or
the ``STRANGLER_ADMIN_TOKEN`` environment variable; the token is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

DEFAULT_ADMIN: Final = "http://127.0.0.1:8081"
TOKEN_ENV: Final = "STRANGLER_ADMIN_TOKEN"


class AdminError(Exception):
    """The admin API could not be reached or refused the call (message for humans)."""


def _token(args: argparse.Namespace) -> str | None:
    if getattr(args, "token_file", None):
        return Path(args.token_file).read_text(encoding="utf-8").strip() or None
    return os.environ.get(TOKEN_ENV) or None


def call(
    admin: str, method: str, path: str, body: object = None, token: str | None = None
) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(admin.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: dict[str, object] = json.loads(resp.read() or b"{}")
            return result
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace").strip()
        raise AdminError(f"{method} {path}: {e.code} {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AdminError(
            f"cannot reach the admin API at {admin}: {reason} (is strangler running?)"
        ) from None


def _routes_table(routes: list[dict[str, object]]) -> str:
    header = ("ROUTE", "OWNER", "MATCH", "TO", "NEW", "NEW %", "STATUS")
    rows = [header]
    for r in routes:
        match = r.get("match") or {}
        assert isinstance(match, dict)
        where = str(match.get("path") or match.get("path_prefix") or "*")
        if match.get("methods"):
            where = ",".join(str(m) for m in match["methods"]) + " " + where
        status = str(r["status"])
        state = r.get("state") or {}
        assert isinstance(state, dict)
        if state.get("guard_reason"):
            status += f" ({state['guard_reason']})"
        rows.append(
            (
                str(r["name"]),
                str(r["owner"]),
                where,
                str(r["to"]),
                str(r["new"] or "-"),
                f"{float(str(r['effective_new_percent'])):g}%",
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _changes(result: dict[str, object]) -> str:
    lines = []
    changes = result.get("changes") or []
    assert isinstance(changes, list)
    for c in changes:
        verb = "changed" if c.get("changed") else "unchanged"
        lines.append(f"{c['route']}: {verb} {json.dumps(c['before'])} -> {json.dumps(c['after'])}")
    if result.get("warning"):  # applied, but the state store's disk refused it
        lines.append(f"warning: {result['warning']}")
    return "\n".join(lines) or "nothing to change"


def _run(fn: object) -> int:
    assert callable(fn)
    try:
        out = fn()
    except AdminError as e:
        print(f"strangler: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


def routes_main(args: argparse.Namespace) -> int:
    def go() -> str:
        result = call(args.admin, "GET", "/api/routes")
        routes = result["routes"]
        assert isinstance(routes, list)
        return json.dumps(result, indent=2) if args.json else _routes_table(routes)

    return _run(go)


def set_main(args: argparse.Namespace) -> int:
    value: str | None = None if args.reset else args.percent
    if value is None and not args.reset:
        print("strangler: give --percent P or --reset", file=sys.stderr)
        return 2
    path = f"/api/routes/{args.route}/percent"
    return _run(lambda: _changes(call(args.admin, "POST", path, {"percent": value}, _token(args))))


def rollback_main(args: argparse.Namespace) -> int:
    if args.all == (args.route is not None):
        print("strangler: name one ROUTE, or --all", file=sys.stderr)
        return 2
    path = "/api/rollback" if args.all else f"/api/routes/{args.route}/rollback"
    return _run(lambda: _changes(call(args.admin, "POST", path, {}, _token(args))))


def enable_main(args: argparse.Namespace) -> int:
    path = f"/api/routes/{args.route}/enable"
    return _run(lambda: _changes(call(args.admin, "POST", path, {}, _token(args))))


def add_release_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser, write: bool) -> None:
        p.add_argument(
            "--admin", default=DEFAULT_ADMIN, help=f"admin API (default {DEFAULT_ADMIN})"
        )
        if write:
            p.add_argument(
                "--token-file", help=f"file holding the admin token (default: ${TOKEN_ENV})"
            )

    p = sub.add_parser("routes", help="list routes with their release state")
    common(p, write=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=routes_main)

    p = sub.add_parser("set", help="set a route's canary share (runtime override)")
    p.add_argument("route")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--percent", help="e.g. 10%% or 0.5%%")
    group.add_argument("--reset", action="store_true", help="back to the config's share")
    common(p, write=True)
    p.set_defaults(func=set_main)

    p = sub.add_parser("rollback", help="send a route (or every route) back to its primary")
    p.add_argument("route", nargs="?")
    p.add_argument("--all", action="store_true", help="every route")
    common(p, write=True)
    p.set_defaults(func=rollback_main)

    p = sub.add_parser("enable", help="undo a rollback or a tripped SLO guard")
    p.add_argument("route")
    common(p, write=True)
    p.set_defaults(func=enable_main)
