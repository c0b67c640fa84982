"""One structured line per request, written off the event loop.

The request path only puts a tuple on a queue (no formatting, no I/O); a writer thread
formats and writes lines in batches. Bodies, query strings, and header values are
never logged, so Authorization and Cookie values cannot leak.

JSON line: ``{"time": "2026-11-25T12:00:00.123Z", "method": "GET", "path": "/x",
"route": "r", "backend": "legacy", "status": 200, "bytes": 12, "duration_ms": 1.2,
"client": "127.0.0.1"}``; text line: ``time client method path status bytes
duration_ms route backend``.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from typing import IO, Final, Literal

Entry = tuple[float, str, str, str, str, int, int, float, str]
_STOP: Final = None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def format_entry(entry: Entry, fmt: Literal["json", "text"]) -> str:
    ts, method, path, route, backend, status, nbytes, ms, client = entry
    if fmt == "json":
        return json.dumps(
            {
                "time": _iso(ts),
                "method": method,
                "path": path,
                "route": route,
                "backend": backend,
                "status": status,
                "bytes": nbytes,
                "duration_ms": round(ms, 3),
                "client": client,
            },
            ensure_ascii=False,
        )
    return f"{_iso(ts)} {client} {method} {path} {status} {nbytes} {ms:.3f}ms {route} {backend}"


class AccessLog:
    """``log(...)`` is cheap and never blocks; ``close()`` flushes what is queued."""

    def __init__(self, fmt: Literal["json", "text", "off"], stream: IO[str] | None = None) -> None:
        self.enabled = fmt != "off"
        self._fmt: Literal["json", "text"] = "text" if fmt == "text" else "json"
        self._stream = stream if stream is not None else sys.stdout
        self._q: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
            self._thread.start()

    def log(self, entry: Entry) -> None:
        if self.enabled:
            self._q.put_nowait(entry)

    def _run(self) -> None:
        q, stream, fmt = self._q, self._stream, self._fmt
        while True:
            item = q.get()
            lines = []
            stop = item is _STOP
            if item is not None:
                lines.append(format_entry(item, fmt))
            while not stop:  # batch whatever else is already queued
                try:
                    more = q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    lines.append(format_entry(more, fmt))
            if lines:
                try:
                    stream.write("\n".join(lines) + "\n")
                    stream.flush()
                except (OSError, ValueError):
                    pass  # a closed or full log stream must never take the proxy down
            if stop:
                return

    def close(self) -> None:
        if self._thread is not None:
            self._q.put_nowait(_STOP)
            self._thread.join(timeout=5)
            self._thread = None
