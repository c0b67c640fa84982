"""Compare two answers to the same request: ``compare(primary, shadow, rules) -> Verdict``.

Pure and synchronous: no I/O, no clock, no randomness; the same inputs always give
the same verdict. What is compared, in order:

1. the status code (unless ``compare.status`` is false);
2. each header in ``compare.headers``: every value, in order (names case-insensitive);
3. the bodies, already decoded from their Content-Encoding (``capture.decode``):
   - both JSON (a JSON content type, or a body starting with ``{`` or ``[``, that
     parses): structurally. Object key order never matters; arrays compare element by
     element unless their path is in ``unordered_arrays`` (then as multisets); numbers
     agree when ``math.isclose(a, b, rel_tol=t, abs_tol=t)`` with ``t =
     float_tolerance`` (``true`` is never ``1``); anything at or under an ``ignore``
     path is skipped, including its presence;
   - otherwise: byte for byte (shown as length and SHA-256);
   - not at all when either body was not captured (larger than ``max_body``): the
     verdict then says ``truncated`` and rests on status and headers alone.

Each ``Difference`` names its kind (status, header, body), where (``status``, the
header name, a JSON path like ``$.items[3].id``, or ``sha256`` for a byte body) and
both values, rendered and cut to ``REPR_LIMIT`` characters. At most
``MAX_DIFFERENCES`` are listed; ``more`` counts the rest. ``patterns`` holds the
distinct JSON paths that differed with array indices generalised to ``[*]`` (for the
per-path counts), ``paths`` the same paths as they are, indices kept (for noise
learning and for confirming a mismatch against a second primary answer), each at most
``MAX_PATTERNS``.

>>> from multidict import CIMultiDict
>>> from strangler.config.shadow_model import CompareRules
>>> h = CIMultiDict({"Content-Type": "application/json"})
>>> rules = Rules.from_spec(CompareRules())
>>> v = compare(Observed(200, h, b'{"a": 1, "b": [1, 2]}'),
...             Observed(200, h, b'{"b": [1, 3], "a": 1}'), rules)
>>> v.match, [(d.kind, d.where, d.primary, d.shadow) for d in v.differences]
(False, [('body', '$.b[1]', '2', '3')])
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, final

from multidict import MultiMapping

from strangler.config.shadow_model import (
    ANY,
    CompareRules,
    JsonPath,
    Step,
    Wildcard,
    format_steps,
)

__all__ = [
    "ABSENT",
    "MAX_DIFFERENCES",
    "MAX_PATTERNS",
    "REPR_LIMIT",
    "BodyMode",
    "Difference",
    "Kind",
    "Observed",
    "Rules",
    "Verdict",
    "compare",
]

Kind = Literal["status", "header", "body"]
BodyMode = Literal["json", "bytes", "skipped"]
"""How the bodies were compared: structurally, byte for byte, or not (truncated, or
the whole document ignored)."""

MAX_DIFFERENCES: Final = 50
MAX_PATTERNS: Final = 256
REPR_LIMIT: Final = 200
ABSENT: Final = "<absent>"
_UNORDERED_TOLERANCE_LIMIT: Final = 64  # leftover elements paired within tolerance, O(n*m)
_JSON_TYPES: Final = ("application/json", "+json")


@dataclass(frozen=True, slots=True)
class Observed:
    """One answer as compared: status, headers, and the decoded body (``None``: not
    captured, because it was larger than ``max_body``)."""

    status: int
    headers: MultiMapping[str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing that differs. ``primary``/``shadow`` are rendered values (JSON text
    for JSON values, ``<absent>`` for a missing key, header or element)."""

    kind: Kind
    where: str
    primary: str
    shadow: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "where": self.where,
            "primary": self.primary,
            "shadow": self.shadow,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one comparison; ``match`` when nothing differs."""

    differences: tuple[Difference, ...] = ()
    more: int = 0
    body: BodyMode = "skipped"
    truncated: bool = False
    patterns: frozenset[JsonPath] = frozenset()
    kinds: frozenset[Kind] = frozenset()  # every kind found, listed or not
    paths: frozenset[JsonPath] = frozenset()  # concrete: indices kept

    @property
    def match(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, object]:
        return {
            "match": self.match,
            "body": self.body,
            "truncated": self.truncated,
            "differences": [d.as_dict() for d in self.differences],
            "more": self.more,
        }


# -- rules, compiled into a path trie ------------------------------------------------------


@final
class _Node:
    __slots__ = ("any", "children", "ignore", "unordered")

    def __init__(self) -> None:
        self.children: dict[str | int, _Node] = {}
        self.any: _Node | None = None
        self.ignore = False
        self.unordered = False

    def add(self, steps: tuple[Step, ...]) -> _Node:
        node = self
        for s in steps:
            if isinstance(s, Wildcard):
                if node.any is None:
                    node.any = _Node()
                node = node.any
            else:
                nxt = node.children.get(s)
                if nxt is None:
                    nxt = node.children[s] = _Node()
                node = nxt
        return node


_Active: TypeAlias = tuple[_Node, ...]
_NONE: Final[_Active] = ()


def _step(active: _Active, key: str | int) -> _Active:
    """The trie nodes matching one more step (a key or index) below ``active``."""
    if not active:
        return active
    out: list[_Node] = []
    for n in active:
        c = n.children.get(key)
        if c is not None:
            out.append(c)
        if n.any is not None:
            out.append(n.any)
    return tuple(out)


def _step_any(active: _Active) -> _Active:
    """Below ``active`` for an element of an unordered array (only wildcards apply)."""
    return tuple(n.any for n in active if n.any is not None) if active else active


def _ignored(active: _Active) -> bool:
    return any(n.ignore for n in active)


def _unordered(active: _Active) -> bool:
    return any(n.unordered for n in active)


@final
class Rules:
    """``CompareRules`` compiled for fast use; build once per route (and again when
    the set of noisy paths changes), share across comparisons."""

    __slots__ = ("_root", "excluded", "header_names", "spec", "status", "tolerance")

    def __init__(self, spec: CompareRules, excluded: frozenset[JsonPath]) -> None:
        self.spec = spec
        self.status = spec.status
        self.header_names = spec.headers
        self.tolerance = spec.float_tolerance
        self.excluded = excluded
        root = _Node()
        for path in (*spec.ignore, *excluded):
            root.add(path.steps).ignore = True
        for path in spec.unordered_arrays:
            root.add(path.steps).unordered = True
        has_rules = root.ignore or root.unordered or root.children or root.any is not None
        self._root: _Active = (root,) if has_rules else _NONE

    @classmethod
    def from_spec(cls, spec: CompareRules, extra_ignore: Iterable[JsonPath] = ()) -> Rules:
        """Compile ``spec``; ``extra_ignore`` adds paths to skip (learned noise)."""
        return cls(spec, frozenset(extra_ignore))

    def with_ignored(self, paths: Iterable[JsonPath]) -> Rules:
        """These rules plus ``paths`` ignored (``self`` when that adds nothing)."""
        more = frozenset(paths) - self.excluded - frozenset(self.spec.ignore)
        return self if not more else Rules(self.spec, self.excluded | more)


# -- the comparison --------------------------------------------------------------------------


def compare(primary: Observed, shadow: Observed, rules: Rules) -> Verdict:
    """Compare ``shadow`` against ``primary`` under ``rules``. Never raises."""
    found = _Found()
    if rules.status and primary.status != shadow.status:
        found.add(Difference("status", "status", str(primary.status), str(shadow.status)))
    for name in rules.header_names:
        a = primary.headers.getall(name, [])
        b = shadow.headers.getall(name, [])
        if a != b:
            found.add(Difference("header", name, _show_header(a), _show_header(b)))
    pb, sb = primary.body, shadow.body
    truncated = pb is None or sb is None
    mode: BodyMode = "skipped"
    if pb is not None and sb is not None and not _ignored(rules._root):
        mode = _bodies(pb, primary.headers, sb, shadow.headers, rules, found)
    return Verdict(
        differences=tuple(found.listed),
        more=found.more,
        body=mode,
        truncated=truncated,
        patterns=frozenset(found.patterns),
        kinds=frozenset(found.kinds),
        paths=frozenset(found.paths),
    )


class _Found:
    __slots__ = ("kinds", "listed", "more", "paths", "patterns")

    def __init__(self) -> None:
        self.listed: list[Difference] = []
        self.more = 0
        self.patterns: set[JsonPath] = set()
        self.paths: set[JsonPath] = set()
        self.kinds: set[Kind] = set()

    def add(self, d: Difference) -> None:
        self.kinds.add(d.kind)
        if len(self.listed) < MAX_DIFFERENCES:
            self.listed.append(d)
        else:
            self.more += 1

    def body(self, steps: list[Step], a: object, b: object) -> None:
        self.kinds.add("body")
        if len(self.patterns) < MAX_PATTERNS:
            self.patterns.add(JsonPath(tuple(ANY if type(s) is int else s for s in steps)))
        if len(self.paths) < MAX_PATTERNS:
            self.paths.add(JsonPath(tuple(steps)))
        if len(self.listed) < MAX_DIFFERENCES:
            where = format_steps(tuple(steps))
            self.listed.append(Difference("body", where, _show_json(a), _show_json(b)))
        else:
            self.more += 1


class _NotJson:
    __slots__ = ()


_NOT_JSON: Final = _NotJson()
_MISSING: Final = object()  # a key or element one side lacks


def _bodies(
    pb: bytes,
    ph: MultiMapping[str],
    sb: bytes,
    sh: MultiMapping[str],
    rules: Rules,
    found: _Found,
) -> BodyMode:
    a = _parse(pb, ph)
    b = _parse(sb, sh) if a is not _NOT_JSON else _NOT_JSON
    if a is not _NOT_JSON and b is not _NOT_JSON:
        before = (len(found.listed), found.more, set(found.patterns), set(found.kinds))
        paths = set(found.paths)
        try:
            _Walker(found, rules.tolerance).walk(a, b, [], rules._root)
            return "json"
        except RecursionError:  # absurdly deep documents: fall back to the bytes
            found.listed[before[0] :] = []
            found.more, found.patterns, found.kinds = before[1], before[2], before[3]
            found.paths = paths
    if pb != sb:
        found.add(Difference("body", "sha256", _show_bytes(pb), _show_bytes(sb)))
    return "bytes"


def _parse(body: bytes, headers: MultiMapping[str]) -> object:
    """The JSON document in ``body``, or ``_NOT_JSON``."""
    ctype = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    looks = ctype.startswith(_JSON_TYPES[0]) or ctype.endswith(_JSON_TYPES[1])
    if not looks:
        head = body[:64].lstrip()
        looks = head[:1] in (b"{", b"[")
    if not looks:
        return _NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _NOT_JSON


class _Walker:
    __slots__ = ("found", "tol")

    def __init__(self, found: _Found, tol: float) -> None:
        self.found = found
        self.tol = tol

    def walk(self, a: object, b: object, steps: list[Step], active: _Active) -> None:
        """Record every difference between ``a`` and ``b`` (found at ``steps``, which
        is not ignored; ``active`` are the rule nodes matching ``steps``)."""
        if type(a) is dict and type(b) is dict:
            self._objects(a, b, steps, active)
        elif type(a) is list and type(b) is list:
            if active and _unordered(active):
                self._multiset(a, b, steps, active)
            else:
                self._arrays(a, b, steps, active)
        elif not _same_scalar(a, b, self.tol):
            self.found.body(steps, a, b)

    def _objects(
        self, a: dict[str, object], b: dict[str, object], steps: list[Step], active: _Active
    ) -> None:
        for key, va in a.items():
            child = _step(active, key)
            if child and _ignored(child):
                continue
            steps.append(key)
            vb = b.get(key, _MISSING)
            if vb is _MISSING:
                self.found.body(steps, va, _MISSING)
            else:
                self.walk(va, vb, steps, child)
            steps.pop()
        for key, vb in b.items():
            if key in a:
                continue
            child = _step(active, key)
            if child and _ignored(child):
                continue
            steps.append(key)
            self.found.body(steps, _MISSING, vb)
            steps.pop()

    def _arrays(self, a: list[object], b: list[object], steps: list[Step], active: _Active) -> None:
        common = min(len(a), len(b))
        for i in range(max(len(a), len(b))):
            child = _step(active, i)
            if child and _ignored(child):
                continue
            steps.append(i)
            if i < common:
                self.walk(a[i], b[i], steps, child)
            elif i < len(a):
                self.found.body(steps, a[i], _MISSING)
            else:
                self.found.body(steps, _MISSING, b[i])
            steps.pop()

    def _multiset(
        self, a: list[object], b: list[object], steps: list[Step], active: _Active
    ) -> None:
        """Arrays as multisets: pair equal elements (after ignores) whatever their
        order; report the rest at their own index, against ``<absent>``."""
        child = _step_any(active)
        ka = [_canonical(x, child) for x in a]
        kb = [_canonical(x, child) for x in b]
        paired = Counter(ka) & Counter(kb)  # how many of each element both sides have
        left_a = _beyond(ka, paired)
        left_b = _beyond(kb, paired)
        if not left_a and not left_b:
            return
        if (
            self.tol
            and left_a
            and left_b
            and len(left_a) * len(left_b) <= (_UNORDERED_TOLERANCE_LIMIT**2)
        ):
            # Exact canonical forms differ; numbers may still agree within tolerance.
            for i in list(left_a):
                for j in left_b:
                    if _equal(a[i], b[j], child, self.tol):
                        left_a.remove(i)
                        left_b.remove(j)
                        break
        for i in left_a:
            steps.append(i)
            self.found.body(steps, a[i], _MISSING)
            steps.pop()
        for j in left_b:
            steps.append(j)
            self.found.body(steps, _MISSING, b[j])
            steps.pop()


def _beyond(keys: list[str], paired: Counter[str]) -> list[int]:
    """Indices of the elements left over once each key's first ``paired[key]``
    occurrences are matched (the same rule on both sides, so reports are stable)."""
    budget = paired.copy()
    left = []
    for i, k in enumerate(keys):
        if budget[k] > 0:
            budget[k] -= 1
        else:
            left.append(i)
    return left


def _same_scalar(a: object, b: object, tol: float) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb and ta is not float:
        return a == b  # str, int, bool, None (dict/list never reach here together)
    if (ta is int or ta is float) and (tb is int or tb is float):
        assert isinstance(a, int | float)
        assert isinstance(b, int | float)
        if a == b:
            return True
        if a != a and b != b:  # NaN (Python's json accepts it) equals NaN here
            return True
        if tol:
            try:
                return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
            except OverflowError:  # an int beyond float range
                return False
    return False


def _equal(a: object, b: object, active: _Active, tol: float) -> bool:
    """Whether ``a`` and ``b`` agree under the rules (no differences recorded)."""
    found = _Found()
    _Walker(found, tol).walk(a, b, [], active)
    return not found.kinds


def _canonical(value: object, active: _Active) -> str:
    """A string equal for two values exactly when they agree with tolerance 0 under the
    rules: sorted keys, ignored members dropped, unordered arrays sorted, integral
    floats written as integers."""
    t = type(value)
    if t is dict:
        assert isinstance(value, dict)
        parts = []
        for key in sorted(value):
            child = _step(active, key)
            if child and _ignored(child):
                continue
            parts.append(f"{json.dumps(key)}:{_canonical(value[key], child)}")
        return "{" + ",".join(parts) + "}"
    if t is list:
        assert isinstance(value, list)
        if active and _unordered(active):
            child = _step_any(active)
            return "[" + ",".join(sorted(_canonical(x, child) for x in value)) + "]"
        items = []
        for i, x in enumerate(value):
            child = _step(active, i)
            items.append("~" if child and _ignored(child) else _canonical(x, child))
        return "[" + ",".join(items) + "]"
    if t is float:
        assert isinstance(value, float)
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    return json.dumps(value)


# -- rendering ---------------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 1] + "…"


def _show_json(value: object) -> str:
    """JSON text of ``value``, cut to ``REPR_LIMIT`` without encoding all of a huge one."""
    if value is _MISSING:
        return ABSENT
    out: list[str] = []
    size = 0
    encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    for chunk in encoder.iterencode(value):
        out.append(chunk)
        size += len(chunk)
        if size > REPR_LIMIT:
            break
    return _cut("".join(out))


def _show_header(values: list[str]) -> str:
    if not values:
        return ABSENT
    return _cut(values[0] if len(values) == 1 else json.dumps(values, ensure_ascii=False))


def _show_bytes(body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()[:16]
    preview = body[:80].decode("utf-8", "replace")
    return _cut(f"{len(body)} bytes, sha256 {digest}…: {preview!r}")
