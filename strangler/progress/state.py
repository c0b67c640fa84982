"""The progress counters as data: what a worker saves, what workers' files merge into.

``ProgressState`` holds, per route name, how many requests legacy and the new services
answered, the 5xx count, when legacy last answered and since when the route has been
tracked; and, per learned legacy endpoint (``"GET /users/{id}"``), its Space-Saving
count, that count's possible overcount and when it was last seen. Times are Unix epoch
seconds; ``0.0`` means never (or unknown).

Files are JSON, written atomically (a temporary file in the same folder, fsync, then
``os.replace``), so a reader sees the old file or the new one, never half of one.
``merge_states`` sums counts, keeps the latest ``last_*`` time and the earliest
``since``, and merges the endpoint summaries as mergeable Space-Saving summaries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from strangler.progress.windows import (
    KEEP,
    Series,
    merge_series,
    series_from_json,
    series_to_json,
)

__all__ = [
    "DEFAULT_MAX_ENDPOINTS",
    "FORMAT",
    "NOT_FOUND",
    "ZERO_CONFIG_DIR",
    "EndpointCounts",
    "Mark",
    "ProgressState",
    "RouteCounts",
    "adopt_discovery",
    "carry_over_discovery",
    "merge",
    "merge_states",
    "read_state",
    "state_files",
    "write_atomically",
    "write_state",
]

log = logging.getLogger("strangler.progress")

FORMAT: Final = "strangler-progress/1"
DEFAULT_MAX_ENDPOINTS: Final = 1000
FILE_GLOB: Final = "progress-*.json"
# Status class bits of an endpoint (``EndpointCounts.classes``): 1 << (status // 100)
# for 1xx..5xx, and NOT_FOUND for 404 and 405, which say "no such endpoint" and so do
# not make an endpoint part of the legacy surface.
NOT_FOUND: Final = 1 << 7


@dataclass(slots=True)
class RouteCounts:
    """One route's counters. Mutated in place on the request path."""

    legacy: int = 0  # requests answered by the legacy upstream
    new: int = 0  # requests answered by a new service
    errors: int = 0  # 5xx answers (either backend)
    last_legacy: float = 0.0  # when legacy last answered; 0.0: never
    since: float = 0.0  # when tracking of this route began; 0.0: unknown


@dataclass(slots=True)
class EndpointCounts:
    """One learned legacy endpoint in the Space-Saving table.

    The true request count lies in ``[count - overcount, count]``.
    """

    count: int
    overcount: int
    last_seen: float
    classes: int = 0  # the status classes answered (bits, see NOT_FOUND); 0: unknown

    @property
    def surface(self) -> bool:
        """False when the endpoint only ever answered 404/405 (a scanner, a typo)."""
        return self.classes == 0 or bool(self.classes & ~NOT_FOUND)


@dataclass(slots=True)
class Mark:
    """The config's migration state as a worker saw it during one history bucket."""

    seen_at: float
    migrated: int  # routes migrated
    total: int  # routes in the config


@dataclass(slots=True)
class ProgressState:
    routes: dict[str, RouteCounts] = field(default_factory=dict)
    endpoints: dict[str, EndpointCounts] = field(default_factory=dict)
    # An endpoint not in ``endpoints`` was seen at most ``floor`` times (0: none was
    # ever dropped, so an absent endpoint was never seen).
    floor: int = 0
    capacity: int = DEFAULT_MAX_ENDPOINTS
    # Per route name: the counts in time buckets (``windows``).
    series: dict[str, Series] = field(default_factory=dict)
    # Per history bucket index (``five`` / ``hour`` tier): routes migrated then.
    marks: dict[str, dict[int, Mark]] = field(default_factory=dict)
    # Learned endpoints that a route has claimed since (endpoint coverage).
    claimed: set[str] = field(default_factory=set)
    # Per route name: when its figures were last reset (``resets``; not saved).
    reset_at: dict[str, float] = field(default_factory=dict)


def merge_states(states: Iterable[ProgressState]) -> ProgressState:
    """Combine several workers' states into one.

    Routes: counts are summed, ``last_legacy`` is the latest, ``since`` the earliest
    known. Endpoints (Agarwal et al., "Mergeable summaries", 2012): an endpoint absent
    from one input may still have been seen up to that input's ``floor`` times, so
    that floor is added to both its count and its overcount; the result keeps the
    ``capacity`` largest counts and its floor bounds every endpoint it left out.
    """
    states = list(states)
    out = ProgressState(capacity=max((s.capacity for s in states), default=DEFAULT_MAX_ENDPOINTS))
    for s in states:
        for name, r in s.routes.items():
            m = out.routes.get(name)
            if m is None:
                out.routes[name] = RouteCounts(r.legacy, r.new, r.errors, r.last_legacy, r.since)
                continue
            m.legacy += r.legacy
            m.new += r.new
            m.errors += r.errors
            m.last_legacy = max(m.last_legacy, r.last_legacy)
            if r.since and (not m.since or r.since < m.since):
                m.since = r.since
    floors = sum(s.floor for s in states)
    endpoints: dict[str, EndpointCounts] = {}
    for s in states:
        for key, e in s.endpoints.items():
            m2 = endpoints.get(key)
            if m2 is None:
                # Start from every input's floor; the inputs holding the key replace
                # their floor by their own count below.
                m2 = endpoints[key] = EndpointCounts(floors, floors, 0.0)
            m2.count += e.count - s.floor
            m2.overcount += e.overcount - s.floor
            m2.last_seen = max(m2.last_seen, e.last_seen)
            m2.classes |= e.classes
    ranked = sorted(endpoints.items(), key=lambda kv: (-kv[1].count, kv[0]))
    kept, dropped = ranked[: out.capacity], ranked[out.capacity :]
    out.endpoints = dict(kept)
    out.floor = max(floors, dropped[0][1].count if dropped else 0)
    names = {name for s in states for name in s.series}
    out.series = {
        name: merge_series(s.series[name] for s in states if name in s.series) for name in names
    }
    for s in states:
        for tier, marks in s.marks.items():
            dst = out.marks.setdefault(tier, {})
            for i, mark in marks.items():
                have = dst.get(i)
                if have is None or mark.seen_at > have.seen_at:
                    dst[i] = Mark(mark.seen_at, mark.migrated, mark.total)
    out.claimed = set().union(*(s.claimed for s in states))
    return out


def state_to_json(state: ProgressState, *, worker: str, saved_at: float) -> dict[str, object]:
    return {
        "format": FORMAT,
        "worker": worker,
        "saved_at": saved_at,
        "capacity": state.capacity,
        "floor": state.floor,
        "routes": {
            name: {
                "legacy": r.legacy,
                "new": r.new,
                "errors": r.errors,
                "last_legacy_at": r.last_legacy or None,
                "tracking_since": r.since or None,
            }
            for name, r in state.routes.items()
        },
        "endpoints": {
            key: {
                "requests": e.count,
                "overcount": e.overcount,
                "last_seen": e.last_seen,
                "classes": e.classes,
            }
            for key, e in state.endpoints.items()
        },
        "series": {name: series_to_json(s) for name, s in state.series.items()},
        "marks": {
            tier: [[i, m.seen_at, m.migrated, m.total] for i, m in sorted(marks.items())]
            for tier, marks in state.marks.items()
        },
        "claimed": sorted(state.claimed),
    }


def _int(obj: Mapping[str, object], key: str) -> int:
    v = obj.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"'{key}' must be a non-negative integer, not {v!r}")
    return v


def _time(obj: Mapping[str, object], key: str) -> float:
    v = obj.get(key)
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError(f"'{key}' must be a Unix time or null, not {v!r}")
    return float(v)


def _mapping(obj: object, what: str) -> Mapping[str, object]:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be an object")
    return obj


def state_from_json(obj: object) -> ProgressState:
    """Parse a saved state; raise ``ValueError`` naming the first bad field."""
    top = _mapping(obj, "the state")
    if top.get("format") != FORMAT:
        raise ValueError(f"unknown format {top.get('format')!r} (expected {FORMAT!r})")
    state = ProgressState(capacity=_int(top, "capacity") or DEFAULT_MAX_ENDPOINTS)
    state.floor = _int(top, "floor")
    for name, raw in _mapping(top.get("routes", {}), "'routes'").items():
        r = _mapping(raw, f"route {name!r}")
        state.routes[name] = RouteCounts(
            legacy=_int(r, "legacy"),
            new=_int(r, "new"),
            errors=_int(r, "errors"),
            last_legacy=_time(r, "last_legacy_at"),
            since=_time(r, "tracking_since"),
        )
    for key, raw in _mapping(top.get("endpoints", {}), "'endpoints'").items():
        e = _mapping(raw, f"endpoint {key!r}")
        state.endpoints[key] = EndpointCounts(
            count=_int(e, "requests"),
            overcount=_int(e, "overcount"),
            last_seen=_time(e, "last_seen"),
            classes=_int(e, "classes"),
        )
    for name, raw in _mapping(top.get("series", {}), "'series'").items():
        state.series[name] = series_from_json(raw, f"series {name!r}")
    for tier, rows in _mapping(top.get("marks", {}), "'marks'").items():
        if tier not in KEEP or not isinstance(rows, list):
            raise ValueError(f"'marks' has an unknown tier {tier!r} or is not a list")
        marks = state.marks[tier] = {}
        for row in rows:
            if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], int)):
                raise ValueError("'marks' rows must be [index, seen_at, migrated, total]")
            r = dict(zip(("seen_at", "migrated", "total"), row[1:], strict=True))
            marks[row[0]] = Mark(_time(r, "seen_at"), _int(r, "migrated"), _int(r, "total"))
    claimed = top.get("claimed", [])
    if not isinstance(claimed, list) or not all(isinstance(k, str) for k in claimed):
        raise ValueError("'claimed' must be a list of endpoints")
    state.claimed = set(claimed)
    return state


def write_state(path: Path, state: ProgressState, *, worker: str, saved_at: float) -> None:
    """Write ``state`` to ``path`` atomically; raises ``OSError``."""
    data = json.dumps(state_to_json(state, worker=worker, saved_at=saved_at), separators=(",", ":"))
    write_atomically(path, data.encode())


def write_atomically(path: Path, data: bytes) -> None:
    """A temporary file in the same folder, fsync, then ``os.replace``: a reader sees
    the old file or the new one, never half of one. Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_state(path: Path) -> ProgressState:
    """Read one saved state; raises ``OSError`` or ``ValueError`` (bad JSON or shape)."""
    with open(path, encoding="utf-8") as f:
        return state_from_json(json.load(f))


def state_files(state_dir: Path) -> list[Path]:
    """Every worker's state file in ``state_dir``, sorted; none if it does not exist."""
    return sorted(state_dir.glob(FILE_GLOB))


def merge(files: Iterable[Path]) -> ProgressState:
    """Read and merge several workers' files. A missing or unreadable file is skipped
    (logged), so one bad file never hides the others."""
    states = []
    for f in files:
        try:
            states.append(read_state(f))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            log.warning("skipping progress state %s: %s", f, e)
    return merge_states(states)


ZERO_CONFIG_DIR: Final = ".strangler"  # ``strangler serve --legacy``: in the working directory


def adopt_discovery(state_dir: Path, zero_config_dir: Path) -> list[Path]:
    """Carry the progress gathered in zero-config mode over to a config's state dir.

    ``strangler serve --legacy URL`` keeps its state in ``./.strangler``; a config
    file's default state dir is ``.strangler`` beside the config. When the config's
    dir has no progress files yet and the zero-config dir has some (and they are not
    the same folder), the files are copied over (never moved: the originals stay), so
    the learned backlog and the history survive the switch. Returns the copies made;
    blocking; raises ``OSError``.
    """
    if not zero_config_dir.is_dir() or state_files(state_dir):
        return []
    if state_dir.exists() and os.path.samefile(state_dir, zero_config_dir):
        return []
    copies = []
    for f in state_files(zero_config_dir):
        write_atomically(state_dir / f.name, f.read_bytes())
        copies.append(state_dir / f.name)
    return copies


def carry_over_discovery(state_dir: Path) -> None:
    """``adopt_discovery`` from ``./.strangler``, logged; never raises (a failure is
    a warning: the proxy starts anyway)."""
    try:
        for f in adopt_discovery(state_dir, Path(ZERO_CONFIG_DIR)):
            log.info("progress learned in zero-config mode carried over to %s", f)
    except OSError as e:
        log.warning("cannot carry the zero-config progress over to %s: %s", state_dir, e)
