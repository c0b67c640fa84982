"""``strangler routes | set | rollback | enable``: the release dials, from a terminal.

They talk to a running proxy's admin API; ``strangler.cli_admin`` says how the
address (``--admin``, ``STRANGLER_ADMIN``, ``--config``) and the write token
(``--token-file``, ``STRANGLER_ADMIN_TOKEN``) are found. The token is never printed.

A write names a ROUTE (a route of a canary group takes its whole group along, unless
``--only-route``), ``--group NAME``, or ``--all`` (rollback, enable). Every write
takes ``--reason TEXT`` (kept in the audit log) and prints one line per route (one
line for a group that moved alike), or the admin API's JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import quote

from strangler.cli_admin import (
    AdminSetupError,
    add_admin_arguments,
    denied,
    resolve_token,
    unreachable,
)


class AdminError(Exception):
    """The admin API could not be reached or refused the call (message for humans)."""


def _token(args: argparse.Namespace) -> str | None:
    try:
        return resolve_token(args)
    except AdminSetupError as e:
        raise AdminError(str(e)) from None


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
        refused = denied(e.code, detail, token_given=bool(token))
        raise AdminError(refused or f"{method} {path}: {e.code} {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise AdminError(unreachable(admin, getattr(e, "reason", e))) from None


def _pct(value: object) -> str:
    return f"{float(str(value)):g}%"


def _share(r: dict[str, object]) -> str:
    """The new side's share now, marked when a runtime override moved it off the file's."""
    now = _pct(r["effective_new_percent"])
    file = r.get("file_new_percent")
    if file is None or float(str(file)) == float(str(r["effective_new_percent"])):
        return now
    return f"{now} (runtime; file says {_pct(file)})"


def _grouped(routes: list[dict[str, object]]) -> list[dict[str, object]]:
    """Config order, except that a canary group's routes stand together (at its first)."""
    members: dict[str, list[dict[str, object]]] = {}
    for r in routes:
        if r.get("group"):
            members.setdefault(str(r["group"]), []).append(r)
    out: list[dict[str, object]] = []
    for r in routes:
        group = r.get("group")
        if not group:
            out.append(r)
        elif members[str(group)][0] is r:
            out.extend(members[str(group)])
    return out


def _split_groups(routes: list[dict[str, object]]) -> set[str]:
    """Groups whose routes differ in status or share (an ``--only-route`` write)."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for r in routes:
        if r.get("group"):
            state = (str(r["status"]), str(r["effective_new_percent"]))
            seen.setdefault(str(r["group"]), set()).add(state)
    return {group for group, states in seen.items() if len(states) > 1}


def _routes_table(routes: list[dict[str, object]]) -> str:
    header = ("ROUTE", "GROUP", "OWNER", "MATCH", "TO", "NEW", "NEW %", "STATUS")
    rows = [header]
    split = _split_groups(routes)
    for r in _grouped(routes):
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
        group = str(r.get("group") or "-")
        rows.append(
            (
                str(r["name"]),
                f"{group} (split)" if group in split else group,
                str(r["owner"]),
                where,
                str(r["to"]),
                str(r["new"] or "-"),
                _share(r),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _changes(result: dict[str, object]) -> str:
    """The write's human lines (one per route, or one for a group that moved alike),
    then the warning of a write applied but not stored (the state disk refused it)."""
    out = result.get("lines")
    if isinstance(out, list) and out:
        lines = [str(line) for line in out]
    else:
        changes = result.get("changes") or []  # an older proxy: no lines
        assert isinstance(changes, list)
        lines = [
            f"{c['route']}: {'changed' if c.get('changed') else 'unchanged'} "
            f"{json.dumps(c['before'])} -> {json.dumps(c['after'])}"
            for c in changes
        ]
    if result.get("warning"):
        lines.append(f"warning: {result['warning']}")
    return "\n".join(lines) or "nothing to change"


def _run(fn: Callable[[], str]) -> int:
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


def _target(args: argparse.Namespace, verb: str) -> str | None:
    """The admin path a write goes to (ROUTE, --group or --all), or ``None`` after
    printing why the arguments do not name exactly one target."""
    every = getattr(args, "all", False)
    named = [x for x in (args.route is not None, args.group is not None, every) if x]
    if len(named) != 1:
        what = "ROUTE or --group NAME" + (", or --all" if hasattr(args, "all") else "")
        print(f"strangler: name one {what}", file=sys.stderr)
        return None
    if args.only_route and args.route is None:
        print("strangler: --only-route goes with a ROUTE", file=sys.stderr)
        return None
    if args.route is not None:
        return f"/api/routes/{quote(args.route, safe='')}/{verb}"
    if args.group is not None:
        return f"/api/groups/{quote(args.group, safe='')}/{verb}"
    return f"/api/{verb}"


def _write(args: argparse.Namespace, path: str, body: dict[str, object]) -> int:
    if args.reason:
        body["reason"] = args.reason
    if args.only_route:
        body["only_route"] = True

    def go() -> str:
        result = call(args.admin, "POST", path, body, _token(args))
        return json.dumps(result, indent=2) if args.json else _changes(result)

    return _run(go)


def set_main(args: argparse.Namespace) -> int:
    value: str | None = None if args.reset else args.percent
    if value is None and not args.reset:
        print("strangler: give --percent P or --reset", file=sys.stderr)
        return 2
    path = _target(args, "percent")
    return 2 if path is None else _write(args, path, {"percent": value})


def rollback_main(args: argparse.Namespace) -> int:
    path = _target(args, "rollback")
    return 2 if path is None else _write(args, path, {})


def enable_main(args: argparse.Namespace) -> int:
    path = _target(args, "enable")
    return 2 if path is None else _write(args, path, {})


def add_release_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser, write: bool) -> None:
        add_admin_arguments(p, write=write)

    def target(p: argparse.ArgumentParser, every: str | None) -> None:
        p.add_argument(
            "route", nargs="?", help="a route (a route of a canary group: the whole group)"
        )
        p.add_argument("--group", metavar="NAME", help="every route of this canary group")
        if every is not None:
            p.add_argument("--all", action="store_true", help=every)
        p.add_argument(
            "--only-route",
            action="store_true",
            help="on a route of a canary group: change this route alone (splits the group's "
            "users between the two sides)",
        )
        p.add_argument("--reason", metavar="TEXT", help="why: kept in the audit log")
        p.add_argument("--json", action="store_true", help="print the admin API's answer")

    p = sub.add_parser("routes", help="list routes with their release state")
    common(p, write=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=routes_main)

    p = sub.add_parser(
        "set", help="set a route's canary share (runtime override; a canary group moves together)"
    )
    target(p, None)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--percent", help="e.g. 10%% or 0.5%%")
    group.add_argument("--reset", action="store_true", help="back to the config's share")
    common(p, write=True)
    p.set_defaults(func=set_main)

    p = sub.add_parser(
        "rollback",
        help="send a route (with its canary group), a group or every route back to its primary",
    )
    target(p, "every route")
    common(p, write=True)
    p.set_defaults(func=rollback_main)

    p = sub.add_parser(
        "enable",
        help="undo a rollback or a tripped SLO guard (a route with its canary group, a group, "
        "or every route)",
    )
    target(p, "every route")
    common(p, write=True)
    p.set_defaults(func=enable_main)
