"""``progress: {ignore, idle_after}``: read and checked with file:line problems.

>>> glob_regex("/static/**")
'/static/.*'
>>> glob_regex("/users/*/avatar.png")
'/users/[^/]*/avatar\\\\.png'
"""

from __future__ import annotations

import re
from typing import Final

from strangler.config import units
from strangler.config.model import ProgressSettings
from strangler.config.source import Node, Seq, describe
from strangler.config.walker import Walker

__all__ = ["PROGRESS_KEYS", "glob_regex", "read_progress"]

PROGRESS_KEYS: Final = ("ignore", "idle_after")
_MIN_IDLE: Final = 3600.0
_MAX_IDLE: Final = 400 * 86400.0
_DAYS: Final = re.compile(r"(\d+(?:\.\d+)?)\s*d")
_GLOB: Final = re.compile(r"\*\*|\*|\?|[^*?]+")


def glob_regex(glob: str) -> str:
    """A path glob as a regex for ``fullmatch``: ``**`` any depth, ``*`` one segment's
    characters, ``?`` one of them."""
    out = []
    for part in _GLOB.findall(glob):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _days(value: object) -> float:
    """A duration (``units.duration``) or a number of days: ``14d``."""
    if isinstance(value, str) and (m := _DAYS.fullmatch(value.strip())):
        return float(m.group(1)) * 86400.0
    try:
        return units.duration(value)
    except ValueError:
        raise ValueError(f"expected a duration like '14d' or '36h', got {value!r}") from None


def read_progress(w: Walker, node: Node) -> ProgressSettings | None:
    f = w.fields(node, PROGRESS_KEYS, subject="progress", where="in progress")
    if f is None:
        return None
    default = ProgressSettings()
    ok = True
    ignore: list[str] = []
    if "ignore" in f:
        items = f["ignore"]
        if not isinstance(items, Seq):
            w.report(
                items.at,
                f"progress.ignore must be a list of path globs, got {describe(items)}",
                "write a list, like ['/static/**', '/health']",
            )
            ok = False
        else:
            for item in items.items:
                text = w.string(item, "progress.ignore entry", hint="a glob like '/static/**'")
                if text is None:
                    ok = False
                elif not text.startswith("/"):
                    w.report(
                        item.at,
                        f"progress.ignore entry {text!r} must start with '/'",
                        f"globs match the request path, like '/{text.lstrip('*/')}'",
                    )
                    ok = False
                else:
                    ignore.append(text)
    idle_after: float | None = default.idle_after
    if "idle_after" in f:
        idle_after = w.unit(f["idle_after"], "progress.idle_after", _days)
        if idle_after is not None and not _MIN_IDLE <= idle_after <= _MAX_IDLE:
            w.report(
                f["idle_after"].at,
                f"progress.idle_after must be from 1h to 400d, got {idle_after:g}s",
                "how long legacy must be unused before its code can go: 14d, or 35d for "
                "month-end jobs, 95d for quarterly ones",
            )
            idle_after = None
    if not ok or idle_after is None:
        return None
    return ProgressSettings(ignore=tuple(ignore), idle_after=idle_after)
