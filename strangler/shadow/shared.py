"""Shadow results as one proxy's, whichever ``--workers N`` worker answers.

Each worker compares the requests it mirrored and keeps the figures in its own
``ShadowResults``. With several workers, each also *publishes* them: every
``PUBLISH_INTERVAL`` (0.1 s), if anything changed, it writes ``worker-<index>.json``
in the supervisor's runtime directory (written whole, then renamed into place, so a
reader never sees half a file). The worker that takes an admin connection answers
from its own live figures plus every other file there, merged by ``merge_figures`` in
a fixed order, so every worker computes the same answer: counts are exact sums, the
samples the newest of all, the top paths the most counted over all.

Freshness: a comparison that finished on any worker is in every worker's answer at
most ``PUBLISH_INTERVAL`` (plus one file write) later; on the worker that made it, at
once.

Cost: a publish re-serialises only the routes whose counts moved, and each sample
once (kept as JSON text while it is in the ring); a quiet worker writes nothing.
Reads (admin only) parse the other workers' files.

A worker that replaces one that exited folds its predecessor's last figures into
``retired-<index>.json`` (one file per index, merged again at each replacement), so
the proxy's figures do not drop when a worker is replaced. Only the routes the
answering worker's config shadows are shown (a route dropped by a reload disappears
everywhere at the reload).

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
    RouteResults,
    Sample,
    ShadowResults,
    merge_figures,
    route_detail,
    route_summary,
)

__all__ = ["PUBLISH_INTERVAL", "SharedResults"]

log = logging.getLogger("strangler.shadow")

PUBLISH_INTERVAL: Final = 0.1  # seconds: the freshness bound across workers
_LIVE: Final = "worker-"
_RETIRED: Final = "retired-"

Published = tuple[float, dict[str, RouteFigures]]  # (since, figures by route)


class SharedResults:
    """This worker's ``ShadowResults``, published for the other workers and read
    merged with theirs. ``directory``: the shared folder (``None``: one process);
    ``worker``: this worker's index (stable across its replacements)."""

    def __init__(self, results: ShadowResults, directory: Path | None, worker: int = 0) -> None:
        self.results = results
        self.directory = directory
        self.worker = worker
        self._published: tuple[object, ...] | None = None
        self._route_json: dict[str, tuple[tuple[int, ...], str]] = {}  # by route
        self._sample_json: dict[int, tuple[Sample, str]] = {}  # id(sample) -> its JSON
        if directory is not None:
            self._retire_predecessor(directory)

    @property
    def routes(self) -> list[str]:
        return sorted(self.results.routes)

    # -- publishing ----------------------------------------------------------------
    def _retire_predecessor(self, directory: Path) -> None:
        """Fold the last figures of the worker this one replaces (same index) into
        the index's retired file."""
        live = directory / f"{_LIVE}{self.worker}.json"
        before = _read(live)
        if before is None:
            return
        retired = directory / f"{_RETIRED}{self.worker}.json"
        parts = [p for p in (_read(retired), before) if p is not None]
        since = min(p[0] for p in parts)
        names = {name for _, figures in parts for name in figures}
        merged = {
            name: merge_figures([f[name] for _, f in parts if name in f], self.results.sample_limit)
            for name in sorted(names)
        }
        _write(retired, json.dumps({"since": since, "routes": merged}, separators=(",", ":")))
        live.unlink(missing_ok=True)

    def _json(self, name: str, r: RouteResults) -> str:
        """The route's figures as JSON text, re-serialised only when they moved."""
        changes = r.changes()
        cached = self._route_json.get(name)
        if cached is not None and cached[0] == changes:
            return cached[1]
        figures: dict[str, object] = dict(r.figures(samples=False))
        del figures["samples"]
        head = json.dumps(figures, separators=(",", ":"))
        samples = ",".join(self._sample_text(s) for s in r.samples)  # oldest first
        text = f'{head[:-1]},"samples":[{samples}]}}'
        self._route_json[name] = (changes, text)
        return text

    def _sample_text(self, sample: Sample) -> str:
        found = self._sample_json.get(id(sample))
        if found is not None and found[0] is sample:
            return found[1]
        text = json.dumps(sample.as_dict(), separators=(",", ":"))
        self._sample_json[id(sample)] = (sample, text)
        return text

    def _snapshot(self) -> str | None:
        """This worker's figures as the file's text, or ``None`` if unchanged since
        the last publish (on the event loop: it reads the live figures)."""
        changes = self.results.changes()
        if changes == self._published:
            return None
        routes = self.results.routes
        body = ",".join(f"{json.dumps(n)}:{self._json(n, r)}" for n, r in routes.items())
        for gone in [n for n in self._route_json if n not in routes]:
            del self._route_json[gone]
        live = {id(s) for r in routes.values() for s in r.samples}
        for key in [k for k in self._sample_json if k not in live]:
            del self._sample_json[key]  # out of every ring: never written again
        self._published = changes
        return f'{{"since":{json.dumps(self.results.started)},"routes":{{{body}}}}}'

    def publish(self) -> bool:
        """Write this worker's figures now if they changed (see ``run``)."""
        if self.directory is None:
            return False
        text = self._snapshot()
        if text is None:
            return False
        _write(self.directory / f"{_LIVE}{self.worker}.json", text)
        return True

    async def run(self, interval: float = PUBLISH_INTERVAL) -> None:
        """Publish every ``interval`` seconds until cancelled (the file is written in
        a thread); once more on the way out, so a stopped worker leaves its last
        figures."""
        if self.directory is None:
            return
        target = self.directory / f"{_LIVE}{self.worker}.json"
        try:
            while True:
                await asyncio.sleep(interval)
                text = self._snapshot()
                if text is None:
                    continue
                try:
                    await asyncio.to_thread(_write, target, text)
                except OSError as e:  # a full disk must not stop the worker
                    self._published = None  # try again next time
                    log.warning("cannot publish shadow results: %s", e)
        finally:
            with contextlib.suppress(OSError):
                self.publish()

    # -- reading -------------------------------------------------------------------
    def _all(self) -> tuple[float, list[dict[str, RouteFigures]]]:
        """Every worker's figures in a fixed order (index, retired before live),
        this worker's own live."""
        own = self.results.figures()
        since = self.results.started
        if self.directory is None:
            return since, [own]
        parts: list[tuple[tuple[int, int], dict[str, RouteFigures]]] = [((self.worker, 1), own)]
        for f in self.directory.glob("*.json"):
            key = _key(f.stem)
            if key is None or key == (self.worker, 1):
                continue  # not a figures file; or this worker's: its live figures are fresher
            found = _read(f)
            if found is not None:
                since = min(since, found[0])
                parts.append((key, found[1]))
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


def _key(stem: str) -> tuple[int, int] | None:
    """``(index, 0)`` for a retired file, ``(index, 1)`` for a live one."""
    for prefix, rank in ((_RETIRED, 0), (_LIVE, 1)):
        index = stem.removeprefix(prefix)
        if stem.startswith(prefix) and index.isdigit():
            return int(index), rank
    return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read(path: Path) -> Published | None:
    """A published file's figures, or ``None`` (missing, or unreadable)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return float(data["since"]), dict(data["routes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
