"""Read a traffic sample into counted request keys, whatever its format.

Formats (detected per source from its first non-blank line):

============== ==================================================== ==========================
format         one request is                                       match keys it carries
============== ==================================================== ==========================
``strangler``  a line of strangler's access log (JSON or text)        method, path
``sample``     a line of a ``strangler plan --record`` sample        method, path, query names,
                                                                    header names
``combined``   a line of an nginx/Apache "combined" (or "common")   method, path, query
               access log
``har``        an entry of a HAR file (a browser's or a proxy's     method, path, host, query,
               export; the whole source is one JSON document)       headers, cookies
============== ==================================================== ==========================

A source is a path (``.gz`` is decompressed) or ``-`` for standard input. Identical
requests are counted once, as one ``Key`` with a count: a log repeats the same few
thousand requests, so the replay routes each distinct one once. A line that does not
parse is never dropped silently: it is counted in ``Traffic.bad`` and the first
``KEEP_BAD`` are kept with their source and line number.

>>> t = Traffic()
>>> read_lines(t, "access.log", iter([
...     '10.0.0.1 - - [03/Dec/2026:10:00:00 +0000] "GET /users/7?full=1 HTTP/1.1" 200 5 "-" "curl"',
...     'garbage',
... ]))
>>> [(k.method, k.path, k.query, n) for k, n in t.counts.items()]
[('GET', '/users/7', (('full', '1'),), 1)]
>>> t.bad, t.bad_lines[0].line
(1, 2)
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Final, Literal, NamedTuple, final
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "CAPABILITIES",
    "KEEP_BAD",
    "BadLine",
    "Format",
    "Key",
    "Traffic",
    "TrafficError",
    "read_lines",
    "read_sources",
]

KEEP_BAD: Final = 5

Format = Literal["strangler", "sample", "combined", "har"]

# What each format lets the replay evaluate beyond method and path. "query" and
# "headers" mean the names are known; "*_values" that the values are too.
CAPABILITIES: Final[Mapping[Format, frozenset[str]]] = {
    "strangler": frozenset(),
    "sample": frozenset({"query", "headers"}),
    "combined": frozenset({"query", "query_values"}),
    "har": frozenset(
        {"host", "query", "query_values", "headers", "header_values", "cookies"},
    ),
}

Pairs = tuple[tuple[str, str], ...]


class Key(NamedTuple):
    """One distinct request as the router sees it. Pairs are sorted, first value kept."""

    method: str
    path: str
    host: str = ""
    query: Pairs = ()
    headers: Pairs = ()
    cookies: Pairs = ()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BadLine:
    source: str
    line: int
    reason: str
    text: str  # the line, cut to 120 characters


@final
@dataclass(slots=True)
class Traffic:
    """The sample: distinct requests with counts, and what could not be read."""

    counts: Counter[Key] = field(default_factory=Counter)
    lines: int = 0  # non-blank lines (or HAR entries) read
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    formats: set[Format] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return self.lines - self.bad

    @property
    def capabilities(self) -> frozenset[str]:
        """What every source read carries (the weakest source decides)."""
        caps: frozenset[str] | None = None
        for f in self.formats:
            caps = CAPABILITIES[f] if caps is None else caps & CAPABILITIES[f]
        return caps or frozenset()

    def reject(self, source: str, line: int, reason: str, text: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < KEEP_BAD:
            cut = text if len(text) <= 120 else text[:117] + "..."
            self.bad_lines.append(BadLine(source=source, line=line, reason=reason, text=cut))


class TrafficError(Exception):
    """A source that cannot be read at all (missing file, not a HAR document...)."""


# "combined": host ident user [time] "request" status bytes ["referer" "agent"];
# "common" is the same without the last two.
_COMBINED: Final = re.compile(
    r'\S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) (\S+)(?: HTTP/\d(?:\.\d)?)?" \d{3} \S+(?: |$)'
)


# The head of a line ``accesslog.format_entry`` writes: method and JSON-escaped path.
_STRANGLER: Final = re.compile(
    r'\{"time": "[^"]*", "method": "([^"\\]+)", "path": "((?:[^"\\]|\\.)*)", "route": '
)


# A line of strangler's text access log: time client method path status bytes
# duration route backend [request id] (the path is decoded and may hold spaces).
_STRANGLER_TEXT: Final = re.compile(
    r"\d{4}-\d\d-\d\dT[\d:.]+Z \S+ ([A-Z]+) (.*) \d{3} \d+ [\d.]+ms \S+ \S+(?: \S+)?\s*$"
)


def _pairs(items: Iterable[tuple[str, str]]) -> Pairs:
    seen: dict[str, str] = {}
    for k, v in items:
        seen.setdefault(k, v)  # the router reads the first value, as aiohttp's .get does
    return tuple(sorted(seen.items()))


def _target(target: str) -> tuple[str, str, Pairs]:
    """``(host, decoded path, query)`` of a request target (origin or absolute form)."""
    host = ""
    if not target.startswith("/"):
        parts = urlsplit(target)
        host, path, query = parts.netloc, parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    return host, unquote(path), _pairs(parse_qsl(query, keep_blank_values=True)) if query else ()


def _strangler(doc: Mapping[str, object]) -> Key | None:
    method, path = doc.get("method"), doc.get("path")
    if not isinstance(method, str) or not isinstance(path, str):
        return None
    return Key(method, path)


def _sample(doc: Mapping[str, object]) -> Key | None:
    method, path = doc.get("method"), doc.get("path")
    qs, hs = doc.get("query_keys", []), doc.get("header_names", [])
    if not isinstance(method, str) or not isinstance(path, str):
        return None
    if not isinstance(qs, list) or not isinstance(hs, list):
        return None
    return Key(
        method,
        path,
        query=_pairs((str(q), "") for q in qs),
        headers=_pairs((str(h).lower(), "") for h in hs),
    )


def _json_line(text: str) -> tuple[Format, Key] | str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if "query_keys" in doc:
        key = _sample(doc)
        return ("sample", key) if key is not None else "no method and path"
    key = _strangler(doc)
    return ("strangler", key) if key is not None else "no method and path"


def read_lines(traffic: Traffic, source: str, lines: Iterable[str]) -> None:
    """Count the requests of a line-oriented source (any format but HAR) into ``traffic``.

    Why it is fast: a line costs one regex match and one dict increment. Lines of
    strangler's own access log are matched by a pattern of the exact shape
    ``accesslog.format_entry`` writes (any other JSON line is parsed in full), and
    the raw ``(method, target)`` is counted; decoding paths and query strings is
    done once per distinct target, after the loop.
    """
    own: dict[tuple[str, str], int] = {}  # (method, JSON-escaped path) → requests
    combined: dict[tuple[str, str], int] = {}  # (method, request target) → requests
    fast_json = _STRANGLER.match
    match_combined = _COMBINED.match
    counts = traffic.counts
    seen = 0
    for number, raw in enumerate(lines, 1):
        if raw[:1] == "{":
            m = fast_json(raw)
            if m is not None:
                seen += 1
                k = (m[1], m[2])
                own[k] = own.get(k, 0) + 1
                continue
        elif (m := match_combined(raw)) is not None:
            seen += 1
            k = (m[1], m[2])
            combined[k] = combined.get(k, 0) + 1
            continue
        text = raw.strip()
        if not text:
            continue
        seen += 1
        if text[0] != "{":
            m = match_combined(text)
            if m is not None:
                k = (m[1], m[2])
                combined[k] = combined.get(k, 0) + 1
            elif (m := _STRANGLER_TEXT.match(text)) is not None:
                traffic.formats.add("strangler")
                counts[Key(m[1], m[2])] += 1
            else:
                traffic.reject(source, number, "not a combined/common log line", text)
            continue
        got = _json_line(text)
        if isinstance(got, str):
            traffic.reject(source, number, got, text)
            continue
        kind, key = got
        traffic.formats.add(kind)
        counts[key] += 1
    traffic.lines += seen
    if own:
        traffic.formats.add("strangler")
        for (method, escaped), n in own.items():
            counts[Key(method, _unescape(escaped))] += n
    if combined:
        traffic.formats.add("combined")
        for (method, target), n in combined.items():
            host, path, query = _target(target)
            counts[Key(method, path, host, query)] += n


def _unescape(escaped: str) -> str:
    if "\\" not in escaped:
        return escaped
    try:
        return str(json.loads('"' + escaped + '"'))
    except ValueError:
        return escaped


def read_har(traffic: Traffic, source: str, text: str) -> None:
    """Count the entries of a HAR document into ``traffic``."""
    try:
        doc = json.loads(text)
        entries = doc["log"]["entries"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise TrafficError(f"{source}: not a HAR file (no log.entries)") from None
    traffic.formats.add("har")
    for number, entry in enumerate(entries, 1):
        traffic.lines += 1
        try:
            req = entry["request"]
            method, url = req["method"], req["url"]
            headers = _pairs((h["name"].lower(), h["value"]) for h in req.get("headers", []))
            cookies = _pairs((c["name"], c["value"]) for c in req.get("cookies", []))
            host, path, query = _target(url)
            host = dict(headers).get("host", host)
        except (KeyError, TypeError, AttributeError, ValueError):
            traffic.reject(source, number, "HAR entry without request method and url", str(entry))
            continue
        traffic.counts[Key(str(method), path, host, query, headers, cookies)] += 1


def _open(source: str) -> IO[str]:
    if source == "-":
        return sys.stdin
    try:
        if source.endswith(".gz"):
            return gzip.open(source, "rt", encoding="utf-8", errors="replace")
        return open(source, encoding="utf-8", errors="replace")
    except OSError as e:
        raise TrafficError(f"{source}: cannot read: {e.strerror or e}") from None


def read_sources(sources: Iterable[str]) -> Traffic:
    """Read every source into one ``Traffic``; raise ``TrafficError`` for an unreadable one."""
    traffic = Traffic()
    for source in sources:
        handle = _open(source)
        try:
            _read_one(traffic, source, handle)
        except (OSError, EOFError) as e:  # a truncated .gz, a read error
            raise TrafficError(f"{source}: cannot read: {e}") from None
        finally:
            if handle is not sys.stdin:
                handle.close()
    return traffic


def _read_one(traffic: Traffic, source: str, handle: Iterable[str]) -> None:
    it = iter(handle)
    head: list[str] = []
    for line in it:
        head.append(line)
        if line.strip():
            break
    first = head[-1].strip() if head else ""
    if first.startswith("{") and _is_har_start(first):
        # One JSON document, usually over several lines: HAR (a log line is one
        # object per line).
        read_har(traffic, source, "".join(head) + "".join(it))
        return
    read_lines(traffic, source, _chain(head, it))


def _is_har_start(text: str) -> bool:
    try:
        doc = json.loads(text)
    except ValueError:
        return True  # the start of a multi-line document
    return isinstance(doc, dict) and "log" in doc


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest
