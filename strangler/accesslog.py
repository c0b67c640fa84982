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
    """ISO-8601 UTC timestamps with milliseconds: the seconds part cached, and the
    whole text for the last millisecond (under load, several requests end in one)."""

    __slots__ = ("_ms", "_prefix", "_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._ms = -1
        self._text = ""

    def iso(self, ts: float) -> str:
        ms = int(ts * 1000)
        if ms == self._ms:
            return self._text
        second = ms // 1000
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._ms = ms
        self._text = text = f"{self._prefix}.{ms % 1000:03d}Z"
        return text


def _json_inner(text: str) -> str:
    """``text`` escaped for the inside of a JSON string: as it is when nothing needs
    escaping (the usual path, route or address: a few C-level checks), else what
    ``json.dumps`` makes of it."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return _dumps(text)[1:-1]


class _Formatter:
    """One access-log line from an ``Entry``: an f-string template, no ``json.dumps``
    unless a value needs escaping."""

    __slots__ = ("clock", "line")

    def __init__(self, fmt: Literal["json", "text"], clock: _Clock | None = None) -> None:
        self.clock = clock or _Clock()
        self.line = self._json if fmt == "json" else self._text

    def _json(self, entry: Entry) -> str:
        ts, method, path, route, backend, status, nbytes, ms, client, rid = entry
        # Status, sizes and the (validated) request id are safe as they are; the rest
        # goes through the escaping check.
        j = _json_inner
        return (
            f'{{"time": "{self.clock.iso(ts)}", "method": "{j(method)}", '
            f'"path": "{j(path)}", "route": "{j(route)}", "backend": "{j(backend)}", '
            f'"status": {status}, "bytes": {nbytes}, "duration_ms": {ms:.3f}, '
            f'"client": "{j(client)}", "request_id": "{rid}"}}'
        )

    def _text(self, entry: Entry) -> str:
        ts, method, path, route, backend, status, nbytes, ms, client, rid = entry
        stamp = self.clock.iso(ts)
        return (
            f"{stamp} {client} {method} {path} {status} {nbytes} {ms:.3f}ms {route} {backend} {rid}"
        )


def format_entry(entry: Entry, fmt: Literal["json", "text"], clock: _Clock | None = None) -> str:
    return _Formatter(fmt, clock).line(entry)


class AccessLog:
    """``log(...)`` is cheap and never blocks; ``close()`` writes what is pending."""

    def __init__(self, fmt: Literal["json", "text", "off"], stream: IO[str] | None = None) -> None:
        self.enabled = fmt != "off"
        self._fmt: Literal["json", "text"] = "text" if fmt == "text" else "json"
        self._stream = stream if stream is not None else sys.stdout
        self._line = _Formatter(self._fmt).line
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
        self._pending.append(self._line(entry))
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
