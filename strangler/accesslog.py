"""One structured line per request, cheap on the event loop and never blocking it.

The request path formats the line (a few string operations; the timestamp text is
cached per second) and appends it to a list; at most every ``FLUSH_EVERY`` seconds
the list is handed, as one string, to a writer thread that only writes. The thread
runs almost no Python, so it does not hold the GIL against the event loop (a thread
formatting lines did, and showed as millisecond stalls in the p99 at a fixed rate);
and a slow log consumer (a full pipe) blocks the thread, never the proxy.

Bodies, query strings and header values are never logged, so Authorization and
Cookie values cannot leak.

JSON line: ``{"time": "2026-11-25T12:00:00.123Z", "method": "GET", "path": "/x",
"route": "r", "backend": "legacy", "status": 200, "bytes": 12, "duration_ms": 1.2,
"client": "127.0.0.1", "request_id": "9f2c41d7-1a"}``; text line: ``time client method
path status bytes duration_ms route backend request_id``. The request id is the
client's ``X-Request-Id`` when it is safe (``strangler.requestid``: no spaces or
quotes can get in), else the one strangler made and sent upstream.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
import time
from typing import IO, Final, Literal

Entry = tuple[float, str, str, str, str, int, int, float, str, str]
FLUSH_EVERY: Final = 0.1  # seconds between hand-overs to the writer thread
_STOP: Final = None
_dumps: Final = json.dumps


class _Clock:
    """ISO-8601 UTC timestamps with milliseconds, the seconds part cached."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, ts: float) -> str:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(ts % 1 * 1000):03d}Z"


def format_entry(entry: Entry, fmt: Literal["json", "text"], clock: _Clock | None = None) -> str:
    ts, method, path, route, backend, status, nbytes, ms, client, rid = entry
    stamp = (clock or _Clock()).iso(ts)
    if fmt == "json":
        # Method, status, sizes and the (validated) request id are safe as they are;
        # the rest is escaped.
        return (
            f'{{"time": "{stamp}", "method": {_dumps(method)}, "path": {_dumps(path)}, '
            f'"route": {_dumps(route)}, "backend": {_dumps(backend)}, "status": {status}, '
            f'"bytes": {nbytes}, "duration_ms": {round(ms, 3)}, "client": {_dumps(client)}, '
            f'"request_id": "{rid}"}}'
        )
    return f"{stamp} {client} {method} {path} {status} {nbytes} {ms:.3f}ms {route} {backend} {rid}"


class AccessLog:
    """``log(...)`` is cheap and never blocks; ``close()`` writes what is pending."""

    def __init__(self, fmt: Literal["json", "text", "off"], stream: IO[str] | None = None) -> None:
        self.enabled = fmt != "off"
        self._fmt: Literal["json", "text"] = "text" if fmt == "text" else "json"
        self._stream = stream if stream is not None else sys.stdout
        self._clock = _Clock()
        self._pending: list[str] = []
        self._armed = False
        self._q: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
            self._thread.start()

    def log(self, entry: Entry) -> None:
        if not self.enabled:
            return
        self._pending.append(format_entry(entry, self._fmt, self._clock))
        if not self._armed:
            self._armed = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_EVERY, self.flush)
            except RuntimeError:  # no loop (a direct call): hand it over now
                self.flush()

    def flush(self) -> None:
        """Hand what is pending to the writer thread."""
        self._armed = False
        if self._pending:
            lines, self._pending = self._pending, []
            lines.append("")
            self._q.put_nowait("\n".join(lines))

    def _run(self) -> None:
        q, stream = self._q, self._stream
        while True:
            text = q.get()
            if text is _STOP:
                return
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed or full log stream must never take the proxy down

    def close(self) -> None:
        self.flush()
        if self._thread is not None:
            self._q.put_nowait(_STOP)
            self._thread.join(timeout=5)
            self._thread = None
