"""``strangler migrate status|pause|resume|approve|abort|retry|skip``: the autopilot
from a terminal, through a running proxy's admin API (``--admin``; writes send the
token from ``--token-file`` or ``STRANGLER_ADMIN_TOKEN``).

``status`` prints, per planned route: the position (``shadow``, ``canary 5%``,
``migrated``, ``legacy`` after an abort, ``done``), the status, the time in the stage,
what it waits for, each gate as pass / FAIL / waiting with its figures, and the last
transitions. ``--json`` prints the API's answer.
"""

from __future__ import annotations

import argparse
import json
from typing import Final

from strangler.cli_admin import add_admin_arguments
from strangler.cli_release import _run, _token, call

_MARK: Final = {"pass": "pass", "fail": "FAIL", "waiting": "waiting"}


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_plan(view: dict[str, object], *, history: int = 3) -> str:
    """One route's plan for people."""
    route = view.get("route")
    if "stage" not in view:
        return f"{route}: not started yet (the autopilot starts it at its next evaluation)"
    share = float(str(view.get("share", 0.0))) * 100
    lines = [
        f"{route}: {view['position']} ({view['status']}, new side {share:g}%, "
        f"in stage {_duration(float(str(view.get('in_stage_seconds', 0))))})"
    ]
    if view.get("note"):
        lines.append(f"  {view['note']}")
    eta = view.get("eta_seconds")
    if isinstance(eta, int | float):
        lines.append(
            f"  done in {_duration(float(eta))} at the earliest, if every gate keeps passing"
        )
    gates = view.get("gates")
    if isinstance(gates, list):
        for g in gates:
            if isinstance(g, dict):
                verdict = _MARK.get(str(g.get("verdict")), str(g.get("verdict")))
                lines.append(f"  {verdict:<8} {g.get('name')}: {g.get('detail')}")
    past = view.get("history")
    if isinstance(past, list) and past:
        lines.append("  recent:")
        for t in past[-history:]:
            if isinstance(t, dict):
                lines.append(
                    f"    {t.get('from')} -> {t.get('to')}: {t.get('reason')} ({t.get('actor')})"
                )
    return "\n".join(lines)


def status_main(args: argparse.Namespace) -> int:
    def go() -> str:
        if args.route:
            result = call(args.admin, "GET", f"/api/migrate/{args.route}")
            return json.dumps(result, indent=2) if args.json else format_plan(result, history=10)
        result = call(args.admin, "GET", "/api/migrate")
        if args.json:
            return json.dumps(result, indent=2)
        routes = result.get("routes")
        if not isinstance(routes, list) or not routes:
            return "no route has a migrate plan"
        return "\n\n".join(format_plan(v) for v in routes if isinstance(v, dict))

    return _run(go)


def action_main(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"reason": args.reason or ""}
    if getattr(args, "stage", None):
        body["stage"] = args.stage

    def go() -> str:
        path = f"/api/migrate/{args.route}/{args.action}"
        result = call(args.admin, "POST", path, body, _token(args))
        if args.json:
            return json.dumps(result, indent=2)
        t = result.get("transition")
        if isinstance(t, dict):
            moved = f"{t.get('from')} -> {t.get('to')}"
            return f"{args.route}: {moved} ({t.get('reason')}) by {t.get('actor')}"
        return f"{args.route}: {result.get('status')}"

    return _run(go)


def add_migrate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="the autopilot: see and steer routes' migrate plans",
        description="See where each route's migrate plan is, and steer it.",
    )
    verbs = p.add_subparsers(dest="action", required=True)
    s = verbs.add_parser("status", help="stage, gates, time in stage, recent transitions")
    s.add_argument("route", nargs="?")
    add_admin_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=status_main)
    helps = {
        "pause": "hold the route where it is (breaches still step it back)",
        "resume": "continue a paused plan (a fresh window)",
        "approve": "let the plan enter the stage that waits for an approval",
        "abort": "back to the primary (0%) now",
        "retry": "start an aborted plan again (from the start, or --stage)",
        "skip": "move to the next step without the gates (needs --reason)",
    }
    for verb, text in helps.items():
        a = verbs.add_parser(verb, help=text)
        a.add_argument("route")
        a.add_argument("--reason", help="why (kept in the timeline and the audit log)")
        if verb == "retry":
            a.add_argument("--stage", help="the stage to start from (default: the first)")
        add_admin_arguments(a, write=True)
        a.add_argument("--json", action="store_true")
        a.set_defaults(func=action_main)
