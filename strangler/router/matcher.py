"""The router: compile the routes' match specs once, then match each request fast.

Guarantee: ``Router.match`` returns the payload of the *first* entry, in declaration
order, whose ``MatchSpec`` holds for the request, or the default payload when none
does. The index only decides which entries are worth testing; it never changes the
answer (``tests/test_router.py`` checks that against a linear scan).

How it stays fast with many routes (all of it precomputed by ``compile``):

* Exact paths (and templates without parameters) sit in a dict keyed by the path.
* Templates and prefixes hang off a trie of their static leading segments; a request
  walks the trie along its own segments, one dict lookup per segment.
* Every trie node holds, per request segment count, the already merged and sorted
  tuple of candidates for a request that ends its walk there: the prefixes and
  "any path" entries above it, the templates above it whose segment count fits. An
  exact-path hit holds that tuple merged with its own entries, so it skips the walk.
* The candidates are then tried in declaration order: methods first, then the
  template regex, then host, headers, query and cookies. ``req.host``,
  ``req.headers``, ``req.query`` and ``req.cookies`` are only read when a
  candidate that needs them is reached, because aiohttp parses them on first use.

>>> from types import SimpleNamespace
>>> from strangler.config.model import MatchSpec
>>> router = Router.compile(
...     [(MatchSpec(path="/users/{id:int}", methods=frozenset({"GET"})), "users"),
...      (MatchSpec(path_prefix="/api"), "api")],
...     default="legacy",
... )
>>> router.match(SimpleNamespace(method="GET", path="/users/7"))
('users', {'id': '7'})
>>> router.match(SimpleNamespace(method="GET", path="/apix"))
('legacy', mappingproxy({}))
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, NamedTuple, Protocol, TypeVar, final
from urllib.parse import unquote

from strangler.config.model import EMPTY_MAP, MatchSpec, ValueMatch
from strangler.router.template import parse_template

__all__ = ["RequestLike", "Router", "normalize_host", "prefix_segments"]

P = TypeVar("P")


class RequestLike(Protocol):
    """The little of a request the router reads. aiohttp's ``web.Request`` satisfies it."""

    @property
    def method(self) -> str: ...

    @property
    def host(self) -> str:
        """The Host, possibly with ``:port``; compared lower-case without the port."""
        ...

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Case-insensitive, as aiohttp's ``CIMultiDictProxy`` is."""
        ...

    @property
    def query(self) -> Mapping[str, str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...


def normalize_host(host: str) -> str:
    """The host as routes compare it: lower-case, no port, no trailing dot.

    >>> normalize_host("API.Example.com.:8443"), normalize_host("[::1]:80")
    ('api.example.com', '[::1]')
    """
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            host = host[: end + 1]
    else:
        name, colon, _ = host.rpartition(":")
        if colon and ":" not in name:  # more than one colon: a bare IPv6 address
            host = name
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


def prefix_segments(prefix: str) -> tuple[str, ...]:
    """The whole (percent-decoded) segments a ``path_prefix`` stands for; ``()`` means every path.

    A trailing ``/`` is ignored, so ``/api/`` and ``/api`` both match ``/api``,
    ``/api/`` and ``/api/x`` (and not ``/apix``). Percent-escapes are decoded, as in
    templates and in the request path: ``/a%20b`` is the prefix ``/a b``.

    >>> prefix_segments("/api/v1/"), prefix_segments("/")
    (('api', 'v1'), ())
    """
    if not prefix.startswith("/"):
        raise ValueError(f"path prefix '{prefix}': must start with '/'")
    stripped = unquote(prefix).rstrip("/")
    return tuple(stripped[1:].split("/")) if stripped else ()


# How one header, query parameter or cookie condition is checked.
_PRESENT: Final = 0
_ABSENT: Final = 1
_EQUALS: Final = 2

_ValueConds = tuple[tuple[str, int, str | None], ...]


def _value_conds(conds: Mapping[str, ValueMatch]) -> _ValueConds:
    out: list[tuple[str, int, str | None]] = []
    for name, vm in conds.items():
        if not vm.present:
            out.append((name, _ABSENT, None))
        elif vm.value is None:
            out.append((name, _PRESENT, None))
        else:
            out.append((name, _EQUALS, vm.value))
    return tuple(out)


def _values_ok(got: Mapping[str, str], conds: _ValueConds) -> bool:
    for name, kind, value in conds:
        have = got.get(name)
        if have is None:
            if kind != _ABSENT:
                return False
        elif kind == _ABSENT or (kind == _EQUALS and have != value):
            return False
    return True


@final
@dataclass(frozen=True, slots=True)
class _Extra:
    """The conditions beyond path and method; ``None`` on a candidate when there are none."""

    host: tuple[str, bool] | None  # (name, is_wildcard); a wildcard holds ".example.com"
    headers: _ValueConds
    query: _ValueConds
    cookies: _ValueConds
    query_names: frozenset[str] | None  # ``query_only``: the only names a query may hold


class _Candidate(NamedTuple, Generic[P]):
    # Unpacked positionally in Router.match: keep this field order.
    methods: frozenset[str] | None
    pattern: re.Pattern[str] | None  # None: the index already proved the path matches
    extra: _Extra | None
    payload: P
    hit: tuple[P, Mapping[str, str]]  # the answer when there are no params, built once
    order: int  # declaration index


_Cands = tuple[_Candidate[P], ...]


@final
class _Node(Generic[P]):
    """A trie node, frozen after ``Router.compile``. See the module docstring."""

    __slots__ = ("by_count", "children", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node[P]] = {}
        self.by_count: dict[int, _Cands[P]] = {}  # request segment count → candidates
        self.rest: _Cands[P] = ()  # candidates for any other segment count

    def lookup(self, count: int) -> _Cands[P]:
        return self.by_count.get(count, self.rest)


@final
class _Building(Generic[P]):
    """What ``compile`` hangs on one trie node before the candidate tuples are merged."""

    __slots__ = ("anywhere", "children", "fixed", "tails")

    def __init__(self) -> None:
        self.children: dict[str, _Building[P]] = {}
        self.anywhere: list[_Candidate[P]] = []  # prefixes (and "any path") ending here
        self.fixed: list[tuple[int, _Candidate[P]]] = []  # templates: exact segment count
        self.tails: list[tuple[int, _Candidate[P]]] = []  # {x:path} templates: minimum count

    def descend(self, segments: Iterable[str]) -> _Building[P]:
        node = self
        for segment in segments:
            node = node.children.setdefault(segment, _Building())
        return node


def _by_index(cands: Iterable[_Candidate[P]]) -> _Cands[P]:
    return tuple(sorted(cands, key=lambda c: c.order))


def _freeze(
    building: _Building[P],
    depth: int,
    anywhere: list[_Candidate[P]],
    fixed: list[tuple[int, _Candidate[P]]],
    tails: list[tuple[int, _Candidate[P]]],
) -> _Node[P]:
    anywhere = anywhere + building.anywhere
    fixed = fixed + building.fixed
    tails = tails + building.tails
    node: _Node[P] = _Node()
    node.rest = _by_index([*anywhere, *(c for _, c in tails)])
    longest = max((n for n, _ in (*fixed, *tails)), default=0)
    # A request reaching this node has at least `depth` segments (counting the empty
    # one before the leading "/"), and at least one.
    for count in range(max(depth, 1), longest + 1):
        node.by_count[count] = _by_index(
            [
                *anywhere,
                *(c for n, c in fixed if n == count),
                *(c for n, c in tails if n <= count),
            ]
        )
    for segment, child in building.children.items():
        node.children[segment] = _freeze(child, depth + 1, anywhere, fixed, tails)
    return node


def _walk(root: _Node[P], segments: list[str]) -> _Node[P]:
    node = root
    for segment in segments:
        child = node.children.get(segment)
        if child is None:
            break
        node = child
    return node


@final
class Router(Generic[P]):
    """Routes compiled for matching. Immutable once built; share it across requests."""

    __slots__ = ("_exact", "_miss", "_root", "_size")

    def __init__(
        self,
        exact: dict[str, _Cands[P]],
        root: _Node[P],
        default: P,
        size: int,
    ) -> None:
        # Build it with Router.compile.
        self._exact = exact
        self._root = root
        self._miss: tuple[P, Mapping[str, str]] = (default, EMPTY_MAP)
        self._size = size

    def __len__(self) -> int:
        """The number of entries compiled in."""
        return self._size

    @classmethod
    def compile(cls, entries: Sequence[tuple[MatchSpec, P]], default: P) -> Router[P]:
        """Index ``entries`` (declaration order: the first that matches wins).

        ``default`` is what ``match`` returns when no entry matches. Raises
        ``ValueError`` (naming the entry's position) for a malformed path template, a
        path or prefix not starting with ``/``, or a spec with both ``path`` and
        ``path_prefix``; the config validator reports those earlier with file:line.
        """
        # The trie is keyed by path.split("/"), whose first item is the "" before the
        # leading "/". Entries that match every path live at the top node, above that
        # "" edge, so that they also catch the odd path without a leading "/" ("*").
        top: _Building[P] = _Building()
        exact: dict[str, list[_Candidate[P]]] = {}
        for index, (spec, payload) in enumerate(entries):
            try:
                _add(top, exact, index, spec, payload)
            except ValueError as exc:
                raise ValueError(f"route #{index}: {exc}") from None
        root = _freeze(top, 0, [], [], [])
        merged = {
            path: _by_index([*own, *_walk(root, path.split("/")).lookup(path.count("/") + 1)])
            for path, own in exact.items()
        }
        return cls(merged, root, default, len(entries))

    def match(self, req: RequestLike) -> tuple[P, Mapping[str, str]]:
        """``(payload, params)`` of the first matching entry, else ``(default, EMPTY_MAP)``.

        ``params`` holds the template's parameters as strings; it is ``EMPTY_MAP``
        (never a fresh dict) when the route has none.
        """
        path = req.path
        cands = self._exact.get(path)
        if cands is None:
            segments = path.split("/")
            node = self._root
            for segment in segments:
                child = node.children.get(segment)
                if child is None:
                    break
                node = child
            cands = node.by_count.get(len(segments), node.rest)
            if not cands:
                return self._miss
        method = req.method
        host: str | None = None
        for methods, pattern, extra, payload, hit, _ in cands:
            if methods is not None and method not in methods:
                continue
            if pattern is None:
                found = None
            else:
                found = pattern.fullmatch(path)
                if found is None:
                    continue
            if extra is not None:
                if extra.host is not None:
                    if host is None:
                        host = normalize_host(req.host)
                    want, wildcard = extra.host
                    if wildcard:
                        if len(host) <= len(want) or not host.endswith(want):
                            continue
                    elif host != want:
                        continue
                if extra.headers and not _values_ok(req.headers, extra.headers):
                    continue
                if extra.query and not _values_ok(req.query, extra.query):
                    continue
                if extra.query_names is not None and not extra.query_names.issuperset(req.query):
                    continue
                if extra.cookies and not _values_ok(req.cookies, extra.cookies):
                    continue
            return hit if found is None else (payload, found.groupdict())
        return self._miss


def _add(
    top: _Building[P],
    exact: dict[str, list[_Candidate[P]]],
    index: int,
    spec: MatchSpec,
    payload: P,
) -> None:
    if spec.path is not None and spec.path_prefix is not None:
        raise ValueError("set either 'path' or 'path_prefix', not both")
    template = parse_template(spec.path) if spec.path is not None else None
    host: tuple[str, bool] | None = None
    if spec.host is not None:
        name = normalize_host(spec.host)
        host = (name[1:], True) if name.startswith("*.") else (name, False)
    extra = None
    only = None if spec.query_only is None else spec.query_only | frozenset(spec.query)
    if host is not None or spec.headers or spec.query or spec.cookies or only is not None:
        extra = _Extra(
            host=host,
            headers=_value_conds(spec.headers),
            query=_value_conds(spec.query),
            cookies=_value_conds(spec.cookies),
            query_names=only,
        )
    pattern = None if template is None else template.pattern
    cand = _Candidate(spec.methods, pattern, extra, payload, (payload, EMPTY_MAP), index)

    if template is None:
        segments = () if spec.path_prefix is None else prefix_segments(spec.path_prefix)
        node = top.descend(("", *segments)) if segments else top
        node.anywhere.append(cand)
    elif template.exact is not None:
        exact.setdefault(template.exact, []).append(cand)
    else:
        node = top.descend(("", *template.static_prefix))
        # Segment count of a matching request, counting the "" before the leading "/".
        count = len(template.segments) + 1
        (node.tails if template.has_tail else node.fixed).append((count, cand))
