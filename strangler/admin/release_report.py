"""What a release write did, told twice: as JSON for machines, as lines for people.

``report(write, routes)`` turns a ``ReleaseWrite`` into the admin API's answer.
Each change gets the route's share of the new side before and after (what users
got, kill switch and guard included) next to the file's share, and one human line::

    orders-read: canary 10% -> 0% (rolled back) by admin@127.0.0.1

A canary group that moved as one, every route alike, is told in one line naming
the group and its routes; a write on every route lists only the routes it changed.
The same lines, joined, are the admin write's one line in the main log. The
operator's ``reason`` closes each line, quoted so that it stays one line. A write
the state file's disk refused (applied in memory only) says ``persisted: false``
and carries a ``warning``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from strangler.release.controls import ReleaseWrite, effective_new_ratio, file_new_ratio
from strangler.release.state import StateChange
from strangler.runtime import CompiledRoute

__all__ = ["report"]

_DONE: Final = {
    "rollback": "rolled back",
    "enable": "enabled",
    "set-percent": "runtime override",
    "guard-trip": "SLO guard tripped",
}


def _pct(ratio: float) -> str:
    return f"{round(ratio * 100.0, 4):g}%"


def _what(write: ReleaseWrite, change: StateChange, file_ratio: float) -> str:
    what = _DONE.get(write.action, write.action)
    if write.action == "enable" and change.before.guard_tripped:
        what += "; guard re-armed"
    if write.action == "set-percent":
        if change.after.percent_override is None:
            what = f"runtime override cleared; file says {_pct(file_ratio)}"
        else:
            what += f"; file says {_pct(file_ratio)}"
    if not change.changed:
        what += "; no change"
    return what


def _scope_note(write: ReleaseWrite) -> str:
    scope = write.scope
    if scope.group is not None:
        return f"; group {scope.group} moved as one"
    if scope.detached is not None:
        return f"; this route only, detached from group {scope.detached}"
    return ""


def _tail(write: ReleaseWrite) -> str:
    by = f" by {write.who}"
    if write.reason:
        by += f", reason: {json.dumps(write.reason, ensure_ascii=False)}"
    return by


def report(write: ReleaseWrite, routes: Mapping[str, CompiledRoute]) -> dict[str, object]:
    """The admin API's answer to ``write``; ``routes``: the loaded routes by name."""
    views: list[dict[str, object]] = []
    for change in write.changes:
        route = routes.get(change.route)
        if route is None:  # removed by a reload during the write
            before = after = file_ratio = 0.0
            label = "new side"
        else:
            before = effective_new_ratio(route, change.before)
            after = effective_new_ratio(route, change.after)
            file_ratio = file_new_ratio(route)
            label = "canary" if route.release.canary is not None else "new side"
        what = _what(write, change, file_ratio)
        moved = f"{label} {_pct(before)} -> {_pct(after)}"
        views.append(
            {
                "route": change.route,
                "changed": change.changed,
                "before": change.before.to_dict(),
                "after": change.after.to_dict(),
                "new_percent_before": round(before * 100.0, 4),
                "new_percent_after": round(after * 100.0, 4),
                "file_percent": round(file_ratio * 100.0, 4),
                "persisted": change.persisted,
                "line": f"{change.route}: {moved} ({what}{_scope_note(write)}){_tail(write)}",
                "_summary": f"{moved} ({what})",
            }
        )
    lines = _lines(write, views)
    for view in views:
        del view["_summary"]
    scope = write.scope
    body: dict[str, object] = {
        "action": write.action,
        "who": write.who,
        "reason": write.reason,
        "group": scope.group,
        "detached": scope.detached,
        "routes": list(scope.routes),
        "changed": write.changed,
        "persisted": write.persisted,
        "changes": views,
        "lines": lines,
    }
    if not write.persisted:
        body["warning"] = (
            f"applied on every worker but not persisted ({write.not_persisted}); "
            "it is stored as soon as the disk takes writes again"
        )
    return body


def _lines(write: ReleaseWrite, views: list[dict[str, object]]) -> list[str]:
    scope = write.scope
    if scope.group is not None:
        summaries = {str(v["_summary"]) for v in views}
        if len(summaries) == 1:  # the group moved alike: one line names it and its routes
            names = ", ".join(scope.routes)
            return [f"group {scope.group} ({names}): {summaries.pop()}{_tail(write)}"]
    if scope.every:
        lines = [str(v["line"]) for v in views if v["changed"]]
        return lines or [f"every route ({len(views)}): nothing to change{_tail(write)}"]
    return [str(v["line"]) for v in views]
