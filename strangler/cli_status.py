"""``strangler status`` and ``strangler backlog``: migration progress from a running
proxy's admin API, for a terminal.

Both fetch JSON from the admin API (``/api/status``, ``/api/backlog``) with the
standard library, bypassing any HTTP proxy from the environment. Exit codes: 0 shown,
1 the admin API could not be reached or answered something unexpected (one line on
stderr says which), 2 a usage error (argparse).

::

    $ strangler status
    Migration progress: 38.5% of 1,234 requests answered by new services
    Routes migrated: 1 of 2 (config 3f2a1c9e, 2024-01-31T12:00:00Z)

      invoices-read  team-billing  [██████████░░░░░░░░░░]  52% new   1,000 req  0.0% 5xx  migrated
      customers      team-crm      [░░░░░░░░░░░░░░░░░░░░]   0% new     234 req  0.0% 5xx  legacy
    ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from http.client import HTTPException
from typing import Final, TextIO

from strangler.cli_admin import (
    DEFAULT_ADMIN,
    AdminSetupError,
    AdminTarget,
    add_admin_arguments,
    resolve_admin,
)

__all__ = ["DEFAULT_ADMIN", "add_status_commands", "backlog_main", "status_main"]

BAR_WIDTH: Final = 20
TIMEOUT: Final = 5.0

_FULL: Final = "█"
_EMPTY: Final = "░"
_RESET: Final = "\x1b[0m"
_BOLD: Final = "\x1b[1m"
_DIM: Final = "\x1b[2m"
_GREEN: Final = "\x1b[32m"
_YELLOW: Final = "\x1b[33m"
_RED: Final = "\x1b[31m"

Doc = Mapping[str, object]


class CliFailure(Exception):
    """A problem to print as one line before exiting 1."""


def _target(admin: str | AdminTarget) -> AdminTarget:
    if isinstance(admin, AdminTarget):
        return admin
    url = admin.strip()
    if "://" not in url:
        url = "http://" + url
    return AdminTarget(url=url.rstrip("/"), source="--admin")


def fetch_json(admin: str | AdminTarget, path: str, *, timeout: float = TIMEOUT) -> Doc:
    """GET ``path`` from the admin API and parse the JSON object; raise ``CliFailure``."""
    target = _target(admin)
    base = target.url
    # No proxies: the admin API is local, and an http_proxy variable must not catch it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise CliFailure(
            f"the admin API at {base} answered {e.code} {e.reason} for {path}"
        ) from None
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        raise CliFailure(target.unreachable(reason)) from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise CliFailure(f"the admin API at {base} did not answer JSON for {path}") from None
    if not isinstance(doc, dict):
        raise CliFailure(f"the admin API at {base} answered an unexpected shape for {path}")
    return doc


# -- reading the JSON without trusting it -------------------------------------------


def _num(d: Doc, key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CliFailure(f"the admin API's answer has no number '{key}'")
    return float(v)


def _str(d: Doc, key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise CliFailure(f"the admin API's answer has no text '{key}'")
    return v


def _opt_str(d: Doc, key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _docs(d: Doc, key: str) -> list[Doc]:
    v = d.get(key)
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise CliFailure(f"the admin API's answer has no list '{key}'")
    return list(v)


def _obj(d: Doc, key: str) -> Doc:
    v = d.get(key)
    if not isinstance(v, dict):
        raise CliFailure(f"the admin API's answer has no object '{key}'")
    return v


# -- formatting ---------------------------------------------------------------------


class _Paint:
    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.on and text else text


def bar(share: float, paint: _Paint, width: int = BAR_WIDTH) -> str:
    """``[██████████░░░░░░░░░░]`` for 0.5. Full only at 100%, empty only at 0%."""
    share = min(max(share, 0.0), 1.0)
    filled = round(share * width)
    if share < 1.0:
        filled = min(filled, width - 1)
    if share > 0.0:
        filled = max(filled, 1)
    return "[" + paint(_GREEN, _FULL * filled) + paint(_DIM, _EMPTY * (width - filled)) + "]"


def _ago(then: str | None, now: datetime | None) -> str:
    if then is None or now is None:
        return ""
    try:
        seconds = (now - datetime.fromisoformat(then)).total_seconds()
    except ValueError:
        return ""
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _when(doc: Doc) -> datetime | None:
    try:
        return datetime.fromisoformat(_str(doc, "generated_at"))
    except (CliFailure, ValueError):
        return None


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def format_status(doc: Doc, *, color: bool, limit: int = 10) -> str:
    """The ``strangler status`` text for an ``/api/status`` answer."""
    paint = _Paint(color)
    now = _when(doc)
    overall = _obj(doc, "overall")
    requests = int(_num(overall, "requests"))
    ratio = _num(overall, "migrated_ratio")
    lines = [
        paint(_BOLD, f"Migration progress: {_pct(ratio)} of {requests:,} requests ")
        + paint(_BOLD, "answered by new services"),
        f"Routes migrated: {int(_num(overall, 'routes_migrated'))} of "
        f"{int(_num(overall, 'routes_total'))} (config {_str(doc, 'version')}, "
        f"{_str(doc, 'generated_at')})",
        "",
    ]
    routes = _docs(doc, "routes")
    if not routes:
        lines.append("  No routes yet: every request goes to legacy.")
    name_w = max((len(_str(r, "name")) for r in routes), default=0)
    owner_w = max((len(_str(r, "owner")) for r in routes), default=0)
    req_w = max((len(f"{int(_num(r, 'requests')):,}") for r in routes), default=1)
    for r in routes:
        share = _num(r, "new_share")
        errors = _num(r, "error_ratio")
        err_text = f"{errors * 100:.1f}% 5xx"
        state = _str(r, "state")
        if state == "canary":
            state = f"canary {_num(r, 'canary_percent'):g}%"
        lines.append(
            f"  {_str(r, 'name'):<{name_w}}  {_str(r, 'owner'):<{owner_w}}  "
            f"{bar(share, paint)}  {share * 100:3.0f}% new  "
            f"{int(_num(r, 'requests')):>{req_w},} req  "
            f"{paint(_RED, err_text) if errors >= 0.01 else err_text}  {state}"
        )
    backlog = _docs(doc, "backlog")[: max(limit, 0)]
    total = int(_num(doc, "backlog_total")) if "backlog_total" in doc else len(backlog)
    lines.append("")
    if backlog:
        lines.append(paint(_BOLD, f"Remaining legacy surface (top {len(backlog)} of {total}):"))
        lines.extend(_backlog_rows(backlog, now))
    else:
        lines.append("Remaining legacy surface: none learned yet (no unrouted requests).")
    lines.append("")
    idle = doc.get("idle_after_days")
    idle_text = f"{idle:g} days" if isinstance(idle, int | float) else "the idle period"
    candidates = _docs(doc, "decommission")
    if candidates:
        lines.append(paint(_YELLOW, f"Deletion candidates (legacy idle for over {idle_text}):"))
        lines.extend(_candidate_rows(candidates))
    else:
        lines.append(f"No deletion candidates (nothing idle on legacy for over {idle_text}).")
    return "\n".join(lines)


def _backlog_rows(endpoints: Sequence[Doc], now: datetime | None) -> list[str]:
    counts = [f"{int(_num(e, 'requests')):,}" for e in endpoints]
    count_w = max(len(c) for c in counts)
    names = [_str(e, "endpoint") for e in endpoints]
    name_w = min(max(len(n) for n in names), 60)
    out = []
    for e, count, name in zip(endpoints, counts, names, strict=True):
        seen = _opt_str(e, "last_seen")
        ago = _ago(seen, now)
        out.append(
            f"  {_pct(_num(e, 'share')):>6}  {count:>{count_w}}  {name:<{name_w}}  "
            f"last seen {ago or seen or '?'}"
        )
    return out


def _candidate_rows(candidates: Sequence[Doc]) -> list[str]:
    name_w = min(max(len(_str(c, "name")) for c in candidates), 60)
    out = []
    for c in candidates:
        last = _opt_str(c, "last_legacy_at")
        since = f"last legacy answer {last}" if last else "never answered by legacy"
        out.append(
            f"  {_str(c, 'kind'):<8}  {_str(c, 'name'):<{name_w}}  "
            f"idle {_num(c, 'idle_days'):.1f} days  ({since})"
        )
    return out


def format_backlog(doc: Doc) -> str:
    """The ``strangler backlog`` table for an ``/api/backlog`` answer."""
    endpoints = _docs(doc, "endpoints")
    total = int(_num(doc, "total"))
    requests = int(_num(doc, "requests"))
    if not endpoints:
        return "Remaining legacy surface: none learned yet (no unrouted requests)."
    lines = [
        f"Remaining legacy surface: {len(endpoints)} of {total} endpoints "
        f"(share of all {requests:,} requests)",
        *_backlog_rows(endpoints, _when(doc)),
    ]
    over = max(int(_num(e, "overcount")) for e in endpoints)
    if over:
        lines.append(
            f"(counts may be over by up to {over:,}: more endpoints were seen than the "
            "table holds, so the rarest ones share counts)"
        )
    return "\n".join(lines)


# -- commands -----------------------------------------------------------------------


def _fail(e: CliFailure, err: TextIO) -> int:
    print(f"strangler: {e}", file=err)
    return 1


def status_main(
    admin_url: str | AdminTarget, *, color: bool, as_json: bool = False, limit: int = 10
) -> int:
    """``strangler status``: print the migration status; 0, or 1 when unreachable."""
    try:
        doc = fetch_json(admin_url, "/api/status")
        if as_json:
            text = json.dumps(doc, indent=2)
        else:
            text = format_status(doc, color=color, limit=limit)
    except CliFailure as e:
        return _fail(e, sys.stderr)
    print(text)
    return 0


def backlog_main(admin_url: str | AdminTarget, limit: int, as_json: bool) -> int:
    """``strangler backlog``: print the remaining legacy surface, ``limit`` endpoints."""
    query = urllib.parse.urlencode({"limit": limit})
    try:
        doc = fetch_json(admin_url, f"/api/backlog?{query}")
        text = json.dumps(doc, indent=2) if as_json else format_backlog(doc)
    except CliFailure as e:
        return _fail(e, sys.stderr)
    print(text)
    return 0


def _want_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count (0 or more), got {raw!r}")
    return value


def _status_command(args: argparse.Namespace) -> int:
    try:
        target = resolve_admin(args)
    except AdminSetupError as e:
        return _fail(CliFailure(str(e)), sys.stderr)
    return status_main(target, color=_want_color(args.color), as_json=args.json, limit=args.limit)


def _backlog_command(args: argparse.Namespace) -> int:
    try:
        target = resolve_admin(args)
    except AdminSetupError as e:
        return _fail(CliFailure(str(e)), sys.stderr)
    return backlog_main(target, args.limit, args.json)


def add_status_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``status`` and ``backlog``; each sets ``func(namespace) -> exit code``."""
    status = sub.add_parser(
        "status",
        help="show migration progress from a running proxy",
        description="Show the share of requests new services answer, every route's "
        "progress, the busiest endpoints still on legacy and the legacy code that can "
        "be deleted, from a running strangler's admin API.",
    )
    backlog = sub.add_parser(
        "backlog",
        help="list the endpoints still answered by legacy, busiest first",
        description="List the remaining legacy surface (requests no route claims, "
        "grouped into endpoint templates like 'GET /users/{id}'), busiest first.",
    )
    for p in (status, backlog):
        add_admin_arguments(p)
        p.add_argument("--json", action="store_true", help="print the admin API's JSON")
    status.add_argument(
        "--limit", type=_count, default=10, help="backlog endpoints to show (default 10)"
    )
    status.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output (default: when writing to a terminal and NO_COLOR is unset)",
    )
    backlog.add_argument("--limit", type=_count, default=50, help="endpoints to list (default 50)")
    status.set_defaults(func=_status_command)
    backlog.set_defaults(func=_backlog_command)
