"""Shadow results as one proxy's, whichever ``--workers N`` worker answers.

Each worker compares the requests it mirrored and keeps the figures in its own
``ShadowResults``. With several workers, each also *publishes* them: every
``PUBLISH_INTERVAL`` (0.1 s) it writes ``worker-<index>.json`` in the supervisor's
runtime directory when anything changed (one small file, written whole and renamed
into place, in a thread). The worker that takes an admin connection answers from its
own live figures plus the other workers' files, merged by ``merge_figures`` in worker
order, so every worker computes the same answer: counts are exact sums, the samples
are the newest of all, the top paths the most counted over all.

Freshness: a comparison that finished on any worker is in every worker's answer at
most ``PUBLISH_INTERVAL`` later (plus the write of one file); on the worker that made
it, at once.

A worker replacing one that exited takes over its predecessor's file (same index) as
a starting point, so the proxy's figures do not drop when a worker is replaced. Only
the routes the answering worker's config shadows are shown (a route dropped by a
reload disappears everywhere at the reload).

Without a runtime directory (one process) this is only the process's own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

from strangler.shadow.samples import (
    RouteFigures,
    ShadowResults,
    merge_figures,
    route_detail,
    route_summary,
)

__all__ = ["PUBLISH_INTERVAL", "SharedResults"]

log = logging.getLogger("strangler.shadow")

PUBLISH_INTERVAL: Final = 0.1  # seconds: the freshness bound across workers
_PREFIX: Final = "worker-"


class SharedResults:
    """This worker's ``ShadowResults``, published for the other workers and read
    merged with theirs. ``directory``: the shared folder (``None``: one process);
    ``worker``: this worker's index (stable across its replacements)."""

    def __init__(self, results: ShadowResults, directory: Path | None, worker: int = 0) -> None:
        self.results = results
        self.directory = directory
        self.worker = worker
        self._published: tuple[object, ...] | None = None
        # A predecessor's figures (same index), kept as the starting point.
        self._carried_since: float | None = None
        self._carried: dict[str, RouteFigures] = {}
        if directory is not None:
            found = _read(self._file(worker))
            if found is not None:
                self._carried_since, self._carried = found

    def _file(self, worker: int) -> Path:
        assert self.directory is not None
        return self.directory / f"{_PREFIX}{worker}.json"

    @property
    def routes(self) -> list[str]:
        return sorted(self.results.routes)

    def own(self) -> tuple[float, dict[str, RouteFigures]]:
        """This worker's figures (with its predecessor's), now."""
        since = self.results.started
        if self._carried_since is not None:
            since = min(since, self._carried_since)
        limit = self.results.sample_limit
        out: dict[str, RouteFigures] = {}
        for name, live in self.results.figures().items():
            before = self._carried.get(name)
            out[name] = live if before is None else merge_figures([before, live], limit)
        return since, out

    def publish(self) -> bool:
        """Write this worker's figures if they changed since the last write (call it
        on the event loop: it snapshots the figures; the write itself is small)."""
        if self.directory is None:
            return False
        changes = self.results.changes()
        if changes == self._published:
            return False
        since, figures = self.own()
        data = json.dumps({"since": since, "routes": figures}, separators=(",", ":"))
        target = self._file(self.worker)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, target)
        self._published = changes
        return True

    async def run(self, interval: float = PUBLISH_INTERVAL) -> None:
        """Publish every ``interval`` seconds until cancelled; once more on the way
        out, so a worker that stops leaves its last figures."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    self.publish()
                except OSError as e:  # a full disk must not stop the worker
                    log.warning("cannot publish shadow results: %s", e)
        finally:
            with contextlib.suppress(OSError):
                self.publish()

    def _all(self) -> tuple[float, list[dict[str, RouteFigures]]]:
        """Every worker's figures, in worker order (this one's live)."""
        since, own = self.own()
        if self.directory is None:
            return since, [own]
        parts: list[tuple[int, dict[str, RouteFigures]]] = [(self.worker, own)]
        for f in self.directory.glob(f"{_PREFIX}*.json"):
            index = f.stem.removeprefix(_PREFIX)
            if not index.isdigit() or int(index) == self.worker:
                continue
            found = _read(f)
            if found is not None:
                since = min(since, found[0])
                parts.append((int(index), found[1]))
        parts.sort(key=lambda p: p[0])
        return since, [p[1] for p in parts]

    def _merged(self, name: str, parts: list[dict[str, RouteFigures]]) -> RouteFigures:
        found = [p[name] for p in parts if name in p]
        return merge_figures(found, self.results.sample_limit)

    def summary(self) -> dict[str, object]:
        since, parts = self._all()
        return {
            "since": since,
            "routes": [route_summary(self._merged(n, parts)) for n in self.routes],
        }

    def detail(self, name: str, top: int = 20) -> dict[str, object] | None:
        if name not in self.results.routes:
            return None
        _, parts = self._all()
        return route_detail(self._merged(name, parts), top)


def _read(path: Path) -> tuple[float, dict[str, RouteFigures]] | None:
    """A worker's published figures, or ``None`` (missing, or unreadable)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return float(data["since"]), dict(data["routes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
