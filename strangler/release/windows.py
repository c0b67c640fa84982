"""Where the SLO guards keep their slots: this process's memory, or with ``--workers N``
files every worker maps, so a guard judges the route's whole traffic on the host.

Each guard's ring (``SLOTS`` rows of ``ROW`` signed 64-bit integers: the slot's tick,
its answers, errors, slow answers, the slowest answer in ns, then the latency bins) is
one segment. A worker writes only its own segment (``KEY.PID.ring`` in the shared
directory, created whole and renamed into place, so a reader never maps half a file)
and reads every other worker's, as Prometheus' multiprocess mode does: no lock on the
hot path, and a worker that died still counts for what it answered within the window.
A row is cleared by marking its tick unusable first and setting the new tick last, so a
reader never adds an old slot's counts to a new tick.

A reset (an operator enables a tripped route) must forget every worker's answers, not
only the resetting worker's: it writes ``KEY.reset`` with the tick it happened in, and
every evaluation ignores slots up to that tick.

``KEY`` names the route and its SLO: a reload that keeps both keeps the window, one that
changes the SLO starts a new one in every worker alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from array import array
from pathlib import Path
from typing import Final

__all__ = ["NEVER", "Segment", "SharedWindows", "window_key"]

NEVER: Final = -(2**62)
"""The tick of a slot that holds nothing."""

_ITEM: Final = 8  # bytes per int64


def window_key(route: str, slo: object) -> str:
    """The file name stem of a route's window under its SLO."""
    return hashlib.blake2b(f"{route}\0{slo!r}".encode(), digest_size=8).hexdigest()


class Segment:
    """One ring of ``size`` int64 values, ``rows`` rows long (tick first in each row):
    in memory, or mapped from a file."""

    __slots__ = ("_map", "path", "values")

    def __init__(self, values: memoryview, path: Path | None = None, mm: mmap.mmap | None = None):
        self.values = values
        self.path = path
        self._map = mm

    @classmethod
    def in_memory(cls, rows: int, row: int) -> Segment:
        values = memoryview(bytearray(rows * row * _ITEM)).cast("q")
        for r in range(rows):
            values[r * row] = NEVER
        return cls(values)

    @classmethod
    def mapped(cls, path: Path) -> Segment:
        with path.open("r+b") as f:
            mm = mmap.mmap(f.fileno(), 0)
        return cls(memoryview(mm).cast("q"), path, mm)

    def close(self) -> None:
        self.values.release()
        if self._map is not None:
            self._map.close()


class SharedWindows:
    """The guards' segments in ``directory`` (shared by the workers of one host)."""

    __slots__ = ("_peers", "directory", "pid")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._peers: dict[str, Segment] = {}  # file name -> the mapped segment

    def own(self, key: str, rows: int, row: int) -> Segment:
        """This process's segment for ``key``: a new file, every slot empty. A file
        this process left (a guard dropped and created again) is started afresh."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key}.{self.pid}.ring"
        empty = array("q", bytes(rows * row * _ITEM))
        for r in range(rows):
            empty[r * row] = NEVER
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(empty.tobytes())
        os.replace(tmp, path)
        return Segment.mapped(path)

    def peers(self, key: str, size: int) -> list[Segment]:
        """The other workers' segments for ``key`` (mapped once, kept while listed)."""
        prefix, mine = f"{key}.", f"{key}.{self.pid}.ring"
        try:
            names = [
                n
                for n in os.listdir(self.directory)
                if n.startswith(prefix) and n.endswith(".ring") and n != mine
            ]
        except OSError:
            return []
        found = []
        for name in names:
            seg = self._peers.get(name)
            if seg is None:
                try:
                    seg = Segment.mapped(self.directory / name)
                except (OSError, ValueError):  # vanished, or empty: not a segment
                    continue
                if len(seg.values) != size:
                    seg.close()
                    continue
                self._peers[name] = seg
            found.append(seg)
        for name in [n for n in self._peers if n.startswith(prefix) and n not in names]:
            self._peers.pop(name).close()
        return found

    def reset_tick(self, key: str) -> int:
        """The tick of the last reset of ``key``'s window (``NEVER``: none)."""
        try:
            return int((self.directory / f"{key}.reset").read_text(encoding="ascii"))
        except (OSError, ValueError):
            return NEVER

    def reset(self, key: str, tick: int) -> None:
        """Every worker's answers up to ``tick`` no longer count."""
        path = self.directory / f"{key}.reset"
        tmp = path.with_suffix(f".{self.pid}.tmp")
        with contextlib.suppress(OSError):  # the evaluation then still sees old answers
            tmp.write_text(str(tick), encoding="ascii")
            os.replace(tmp, path)

    def drop(self, seg: Segment) -> None:
        """Close this process's segment and remove its file (its guard is gone)."""
        seg.close()
        if seg.path is not None:
            with contextlib.suppress(OSError):
                seg.path.unlink()
