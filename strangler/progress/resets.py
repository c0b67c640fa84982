"""``strangler progress reset [ROUTE]``: start a route's (or every route's) figures
afresh, for every worker at once, without touching any worker's counters.

A reset writes one shared file, ``<state dir>/progress_resets.json``: per route, when
it was reset and the merged cumulative counts at that moment (the baseline). Every
reader applies it to the merged state (``apply_resets``): cumulative counts minus the
baseline, windows counting only time buckets that start after the reset. So every
worker answers the same figures, and nothing on the request path changes. The
history (``/api/progress/history``) is left as it was: it records what happened.

Requests a worker answered in the flush interval before the reset that were not yet
in its file count after the reset (a few seconds of traffic at most).

The file is rewritten under an exclusive ``flock`` (read, change, atomic replace), so
two resets through two workers at once both land.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strangler.progress.state import ProgressState, write_atomically

__all__ = ["RESETS_FILE", "Reset", "apply_resets", "read_resets", "record_reset"]

RESETS_FILE: Final = "progress_resets.json"
FORMAT: Final = "strangler-progress-resets/1"


@dataclass(frozen=True, slots=True)
class Reset:
    at: float  # Unix time of the reset
    legacy: int  # merged cumulative counts then: the baseline to subtract
    new: int
    errors: int


def read_resets(state_dir: Path) -> dict[str, Reset]:
    """Every route's latest reset; ``{}`` without a file. Raises ``OSError`` or
    ``ValueError`` for an unreadable one."""
    try:
        with open(state_dir / RESETS_FILE, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{RESETS_FILE}: unknown format")
    routes = doc.get("routes")
    if not isinstance(routes, dict):
        raise ValueError(f"{RESETS_FILE}: 'routes' must be an object")
    out: dict[str, Reset] = {}
    for name, r in routes.items():
        try:
            out[name] = Reset(float(r["at"]), int(r["legacy"]), int(r["new"]), int(r["errors"]))
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{RESETS_FILE}: bad entry for route {name!r}") from None
    return out


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / (RESETS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def record_reset(
    state_dir: Path, state: ProgressState, routes: list[str], at: float
) -> dict[str, Reset]:
    """Reset ``routes`` at ``at`` against ``state`` (every worker merged, resets
    already applied); returns the new entries. Blocking: run it in a thread."""
    with _locked(state_dir):
        current = read_resets(state_dir)
        added: dict[str, Reset] = {}
        for name in routes:
            c = state.routes.get(name)
            before = current.get(name)
            base = (0, 0, 0) if before is None else (before.legacy, before.new, before.errors)
            if c is None:
                added[name] = Reset(at, *base)
            else:
                # ``state`` has the earlier reset subtracted already: add it back.
                added[name] = Reset(at, c.legacy + base[0], c.new + base[1], c.errors + base[2])
        current.update(added)
        _write(state_dir / RESETS_FILE, current)
    return added


def _write(path: Path, resets: Mapping[str, Reset]) -> None:
    doc = {
        "format": FORMAT,
        "routes": {
            n: {"at": r.at, "legacy": r.legacy, "new": r.new, "errors": r.errors}
            for n, r in sorted(resets.items())
        },
    }
    write_atomically(path, json.dumps(doc).encode())


def apply_resets(state: ProgressState, resets: Mapping[str, Reset]) -> None:
    """Subtract each reset route's baseline and note when it was reset (in place)."""
    for name, r in resets.items():
        state.reset_at[name] = r.at
        c = state.routes.get(name)
        if c is None:
            continue
        c.legacy = max(c.legacy - r.legacy, 0)
        c.new = max(c.new - r.new, 0)
        c.errors = max(c.errors - r.errors, 0)
        c.since = max(c.since, r.at)
