"""Shadow results as one proxy's, whichever ``--workers N`` worker answers.

Each worker compares the requests it mirrored and keeps the figures in its own
``ShadowResults``. With several workers, each also *publishes* them: every
``PUBLISH_INTERVAL`` (0.1 s), if anything changed, it writes to the supervisor's
runtime directory

- ``worker-<index>.json``: every route's figures but the samples (small), and
- ``worker-<index>.samples.<route key>.json``: one route's samples, only when they
  changed,

each written whole and renamed into place, so a reader never sees half a file (the
samples first: a reader that sees new counts finds samples at least as new). The
worker that takes an admin connection answers from its own live figures plus every
other worker's files, merged by ``merge_figures`` in a fixed order, so every worker
computes the same answer: counts are exact sums, the samples the newest of all, the
top paths the most counted over all, the gate's "last N compared" the proxy's newest N
by time (each file carries its worker's ring). ``/api/shadow`` reads only the small files;
``/api/shadow/{route}`` also that route's sample files.

Freshness: a comparison that finished on any worker is in every worker's answer at
most ``PUBLISH_INTERVAL`` (plus the file writes) later; on the worker that made it,
at once.

Cost: a publish re-serialises only the routes whose counts moved, and each sample
once (kept as JSON text while it is in the ring); a quiet worker writes nothing. At
worst (every route mismatching all the time) a worker rewrites each route's ring
(20 samples, at most ~180 KB) every 0.1 s, in a thread. Measured on this machine with
10 routes and full rings of large samples: ~4 ms on the event loop for a publish where
every route moved; ``/api/shadow`` in 0.1 ms, a route's detail ~3 ms per other worker.

A worker that replaces one that exited folds its predecessor's last figures into
``retired-<index>.*`` (one set per index, merged again at each replacement), so the
proxy's figures do not drop when a worker is replaced. Only the routes the answering
worker's config shadows are shown (a route dropped by a reload disappears everywhere
at the reload).

Without a runtime directory (one process) this is only the process's own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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

Figures = dict[str, RouteFigures]  # by route name
Writes = dict[str, str | None]  # file name -> its new text (None: remove it)


class SharedResults:
    """This worker's ``ShadowResults``, published for the other workers and read
    merged with theirs. ``directory``: the shared folder (``None``: one process);
    ``worker``: this worker's index (stable across its replacements)."""

    def __init__(self, results: ShadowResults, directory: Path | None, worker: int = 0) -> None:
        self.results = results
        self.directory = directory
        self.worker = worker
        self._stem = f"{_LIVE}{worker}"
        self._published: tuple[object, ...] | None = None
        self._heads: dict[str, tuple[tuple[int, ...], str]] = {}  # route -> JSON w/o samples
        self._sampled: dict[str, tuple[int, int]] = {}  # route -> (mismatches, errors) written
        self._sample_json: dict[int, tuple[Sample, str]] = {}  # id(sample) -> its JSON
        if directory is not None:
            self._retire_predecessor(directory)

    @property
    def routes(self) -> list[str]:
        return sorted(self.results.routes)

    # -- publishing ----------------------------------------------------------------
    def _retire_predecessor(self, directory: Path) -> None:
        """Fold the last figures of the worker this one replaces (same index) into
        the index's retired files."""
        live = f"{_LIVE}{self.worker}"
        before = _read_whole(directory, live)
        if before is None:
            return
        retired = f"{_RETIRED}{self.worker}"
        parts = [p for p in (_read_whole(directory, retired), before) if p is not None]
        since = min(p[0] for p in parts)
        names = sorted({name for _, figures in parts for name in figures})
        limit = self.results.sample_limit
        merged = {n: merge_figures([f[n] for _, f in parts if n in f], limit) for n in names}
        for name, figures in merged.items():
            text = json.dumps(figures["samples"], separators=(",", ":"))
            _write(directory / _samples_file(retired, name), text)
            figures["samples"] = []
        head = json.dumps({"since": since, "routes": merged}, separators=(",", ":"))
        _write(directory / f"{retired}.json", head)
        for f in directory.glob(f"{live}.*"):
            f.unlink(missing_ok=True)

    def _head(self, name: str, r: RouteResults) -> str:
        """The route's figures but its samples as JSON text, re-serialised only when
        they moved."""
        changes = r.changes()
        cached = self._heads.get(name)
        if cached is not None and cached[0] == changes:
            return cached[1]
        text = json.dumps(r.figures(samples=False, tail=True), separators=(",", ":"))
        self._heads[name] = (changes, text)
        return text

    def _sample_text(self, sample: Sample) -> str:
        found = self._sample_json.get(id(sample))
        if found is not None and found[0] is sample:
            return found[1]
        text = json.dumps(sample.as_dict(), separators=(",", ":"))
        self._sample_json[id(sample)] = (sample, text)
        return text

    def _snapshot(self) -> Writes | None:
        """The files to write for this worker's figures now, or ``None`` if nothing
        changed since the last publish (on the event loop: it reads live figures)."""
        changes = self.results.changes()
        if changes == self._published:
            return None
        routes = self.results.routes
        writes: Writes = {}
        for name, r in routes.items():
            moved = (r.mismatches, r.errors)  # a sample comes only with one of these
            if self._sampled.get(name) != moved:
                text = ",".join(self._sample_text(s) for s in r.samples)  # oldest first
                writes[_samples_file(self._stem, name)] = f"[{text}]"
                self._sampled[name] = moved
        for gone in [n for n in self._sampled if n not in routes]:
            writes[_samples_file(self._stem, gone)] = None
            del self._sampled[gone]
            self._heads.pop(gone, None)
        live = {id(s) for r in routes.values() for s in r.samples}
        for key in [k for k in self._sample_json if k not in live]:
            del self._sample_json[key]  # out of every ring: never written again
        body = ",".join(f"{json.dumps(n)}:{self._head(n, r)}" for n, r in routes.items())
        since = json.dumps(self.results.started)
        writes[f"{self._stem}.json"] = f'{{"since":{since},"routes":{{{body}}}}}'  # last
        self._published = changes
        return writes

    def publish(self) -> bool:
        """Write this worker's figures now if they changed (see ``run``)."""
        if self.directory is None:
            return False
        writes = self._snapshot()
        if writes is None:
            return False
        _apply(self.directory, writes)
        return True

    async def run(self, interval: float = PUBLISH_INTERVAL) -> None:
        """Publish every ``interval`` seconds until cancelled (files are written in a
        thread); once more on the way out, so a stopped worker leaves its last
        figures."""
        directory = self.directory
        if directory is None:
            return
        try:
            while True:
                await asyncio.sleep(interval)
                writes = self._snapshot()
                if writes is None:
                    continue
                try:
                    await asyncio.to_thread(_apply, directory, writes)
                except OSError as e:  # a full disk must not stop the worker
                    self._published = None  # write everything again next time
                    self._sampled.clear()
                    log.warning("cannot publish shadow results: %s", e)
        finally:
            with contextlib.suppress(OSError):
                self.publish()

    # -- reading -------------------------------------------------------------------
    def _all(self, samples_of: str | None) -> tuple[float, list[Figures]]:
        """Every worker's figures in a fixed order (index, retired before live), this
        worker's own live; with the samples of route ``samples_of`` only."""
        own = {
            n: r.figures(samples=n == samples_of, tail=n == samples_of)
            for n, r in self.results.routes.items()
        }
        since = self.results.started
        directory = self.directory
        if directory is None:
            return since, [own]
        parts: list[tuple[tuple[int, int], Figures]] = [((self.worker, 1), own)]
        for f in directory.glob("*.json"):
            key = _key(f.stem)
            if key is None or key == (self.worker, 1):
                continue  # not a figures file; or this worker's: its live figures are fresher
            found = _read(f)
            if found is None:
                continue
            since = min(since, found[0])
            figures = found[1]
            if samples_of is not None and samples_of in figures:
                route = figures[samples_of]
                route["samples"] = _read_samples(directory / _samples_file(f.stem, samples_of))
            parts.append((key, figures))
        parts.sort(key=lambda p: p[0])
        return since, [p[1] for p in parts]

    def _merged(self, name: str, parts: list[Figures]) -> RouteFigures:
        found = [p[name] for p in parts if name in p]
        return merge_figures(found, self.results.sample_limit)

    def summary(self) -> dict[str, object]:
        since, parts = self._all(None)
        return {
            "since": since,
            "routes": [route_summary(self._merged(n, parts)) for n in self.routes],
        }

    def detail(self, name: str, top: int = 20) -> dict[str, object] | None:
        if name not in self.results.routes:
            return None
        _, parts = self._all(name)
        return route_detail(self._merged(name, parts), top)


def _samples_file(stem: str, route: str) -> str:
    """Where ``stem`` (``worker-0``, ``retired-0``) keeps ``route``'s samples: a key
    made from the name, as route names need not be file names."""
    key = hashlib.sha256(route.encode()).hexdigest()[:16]
    return f"{stem}.samples.{key}.json"


def _key(stem: str) -> tuple[int, int] | None:
    """``(index, 0)`` for a retired figures file, ``(index, 1)`` for a live one."""
    for prefix, rank in ((_RETIRED, 0), (_LIVE, 1)):
        index = stem.removeprefix(prefix)
        if stem.startswith(prefix) and index.isdigit():
            return int(index), rank
    return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _apply(directory: Path, writes: Writes) -> None:
    """Write (or remove) files in order: the figures file comes last."""
    for name, text in writes.items():
        if text is None:
            (directory / name).unlink(missing_ok=True)
        else:
            _write(directory / name, text)


def _read(path: Path) -> tuple[float, Figures] | None:
    """A figures file (samples empty), or ``None`` (missing, or unreadable)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return float(data["since"]), dict(data["routes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_samples(path: Path) -> list[dict[str, Any]]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [s for s in data if isinstance(s, dict)] if isinstance(data, list) else []


def _read_whole(directory: Path, stem: str) -> tuple[float, Figures] | None:
    """A figures file with every route's samples."""
    found = _read(directory / f"{stem}.json")
    if found is None:
        return None
    for name, figures in found[1].items():
        figures["samples"] = _read_samples(directory / _samples_file(stem, name))
    return found
