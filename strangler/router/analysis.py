"""Find routes that can never match because an earlier route always answers first.

``shadowed(specs)`` powers the "route X is shadowed by route Y" report of
``strangler check``. It is conservative: it reports a pair only when it can prove
that *every* request the later route matches is also matched by the earlier one,
condition by condition (path, methods, host, headers, query, cookies). It never
reasons across several earlier routes together, so a route covered only by the union
of two others is not reported.

>>> from strangler.config.model import MatchSpec
>>> shadowed([
...     MatchSpec(path_prefix="/api"),
...     MatchSpec(path="/api/users/{id:int}", methods=frozenset({"GET"})),
...     MatchSpec(path="/health"),
... ])
[(1, 0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from strangler.config.model import MatchSpec, ValueMatch
from strangler.router.matcher import normalize_host, prefix_segments
from strangler.router.template import Param, Template, parse_template

__all__ = ["shadowed"]

_PRESENT: Final = "present"
_ABSENT: Final = "absent"
_EQUALS: Final = "equals"

# One normalised header/query/cookie condition: (kind, value).
_Cond = tuple[str, str | None]


@final
@dataclass(frozen=True, slots=True)
class _Spec:
    """One ``MatchSpec`` in the shape the coverage rules compare."""

    exact: str | None  # an exact path (a template without parameters)
    template: Template | None  # a template with parameters
    prefix: tuple[str, ...] | None  # whole-segment prefix; None with exact/template set
    methods: frozenset[str] | None
    host: str | None  # normalised; a wildcard is kept as "*.example.com"
    headers: Mapping[str, tuple[_Cond, ...]]  # names lower-cased
    query: Mapping[str, tuple[_Cond, ...]]
    cookies: Mapping[str, tuple[_Cond, ...]]
    query_names: frozenset[str] | None  # ``query_only``: the only query names allowed

    @property
    def any_path(self) -> bool:
        return self.prefix == ()


def shadowed(specs: Sequence[MatchSpec]) -> list[tuple[int, int]]:
    """``(shadowed_index, shadowing_index)`` for every route that can never match.

    Route ``i`` is reported with the lowest ``j < i`` that matches every request
    ``i`` would match, in ascending ``i``. Raises ``ValueError`` (naming the route's
    position) for a spec the router would reject too, such as a malformed template.
    """
    norm: list[_Spec] = []
    for index, spec in enumerate(specs):
        try:
            norm.append(_normalise(spec))
        except ValueError as exc:
            raise ValueError(f"route #{index}: {exc}") from None
    # Only a route whose first path segment can be anything (or one with the same
    # literal first segment) can cover another: bucket earlier routes by it, so a
    # config of a thousand routes is not a million pair checks.
    everywhere: list[int] = []
    by_first: dict[str, list[int]] = {}
    found: list[tuple[int, int]] = []
    for i, later in enumerate(norm):
        first = _first_segment(later)
        buckets = (everywhere,) if first is None else (everywhere, by_first.get(first, []))
        winners = [next((j for j in js if _covers(norm[j], later)), i) for js in buckets]
        if min(winners) < i:
            found.append((i, min(winners)))
        (everywhere if first is None else by_first.setdefault(first, [])).append(i)
    return found


def _first_segment(spec: _Spec) -> str | None:
    """The literal first path segment every request ``spec`` matches has, if any."""
    if spec.exact is not None:
        return spec.exact[1:].split("/", 1)[0]
    if spec.prefix:
        return spec.prefix[0]
    if spec.template is not None and isinstance(spec.template.segments[0], str):
        return spec.template.segments[0]
    return None


def _normalise(spec: MatchSpec) -> _Spec:
    if spec.path is not None and spec.path_prefix is not None:
        raise ValueError("set either 'path' or 'path_prefix', not both")
    exact = template = prefix = None
    if spec.path is not None:
        parsed = parse_template(spec.path)
        if parsed.exact is not None:
            exact = parsed.exact
        else:
            template = parsed
    elif spec.path_prefix is not None:
        prefix = prefix_segments(spec.path_prefix)
    else:
        prefix = ()
    return _Spec(
        exact=exact,
        template=template,
        prefix=prefix,
        methods=spec.methods,
        host=None if spec.host is None else normalize_host(spec.host),
        headers=_conds(spec.headers, fold_case=True),
        query=_conds(spec.query, fold_case=False),
        cookies=_conds(spec.cookies, fold_case=False),
        query_names=None if spec.query_only is None else spec.query_only | frozenset(spec.query),
    )


def _conds(conds: Mapping[str, ValueMatch], *, fold_case: bool) -> Mapping[str, tuple[_Cond, ...]]:
    out: dict[str, tuple[_Cond, ...]] = {}
    for name, vm in conds.items():
        key = name.lower() if fold_case else name
        if not vm.present:
            cond: _Cond = (_ABSENT, None)
        elif vm.value is None:
            cond = (_PRESENT, None)
        else:
            cond = (_EQUALS, vm.value)
        out[key] = (*out.get(key, ()), cond)
    return out


def _covers(j: _Spec, i: _Spec) -> bool:
    """Whether every request ``i`` matches is matched by ``j`` (conservatively)."""
    return (
        _covers_path(j, i)
        and (j.methods is None or (i.methods is not None and j.methods >= i.methods))
        and _covers_host(j.host, i.host)
        and _implied(j.headers, i.headers)
        and _implied(j.query, i.query)
        and _implied(j.cookies, i.cookies)
        and (
            j.query_names is None or (i.query_names is not None and i.query_names <= j.query_names)
        )
    )


def _covers_path(j: _Spec, i: _Spec) -> bool:
    if j.any_path:
        return True
    if i.any_path:
        return False
    if j.exact is not None:
        return i.exact == j.exact
    if j.prefix is not None:
        p = j.prefix
        if i.exact is not None:
            return i.exact[1:].split("/")[: len(p)] == list(p)
        if i.prefix is not None:
            return i.prefix[: len(p)] == p
        return i.template is not None and i.template.static_prefix[: len(p)] == p
    if j.template is None:  # unreachable: one of exact, prefix, template is always set
        return False
    if i.exact is not None:
        return j.template.match(i.exact) is not None
    if i.template is not None:
        return _template_covers(j.template.segments, i.template.segments)
    # A prefix matches "/a/b" and everything below it: only a template ending in
    # {x:path} can take all of that, and only if the prefix reaches that segment.
    return (
        i.prefix is not None
        and j.template.has_tail
        and _template_covers(j.template.segments, i.prefix)
    )


def _template_covers(outer: Sequence[str | Param], inner: Sequence[str | Param]) -> bool:
    """Whether template segments ``outer`` match every path ``inner`` matches.

    ``inner`` may be a prefix's literal segments when ``outer`` ends in ``{x:path}``
    (the prefix's own last segment is never empty, so the rest is never empty).
    """
    last = outer[-1]
    if isinstance(last, Param) and last.converter == "path":
        k = len(outer) - 1
        if len(inner) <= k:
            return False
        # The rest of the path, from segment k on, must never be empty.
        if len(inner) == k + 1 and inner[k] == "":
            return False
        return all(_segment_covers(a, b) for a, b in zip(outer[:k], inner, strict=False))
    return len(outer) == len(inner) and all(
        _segment_covers(a, b) for a, b in zip(outer, inner, strict=True)
    )


def _segment_covers(a: str | Param, b: str | Param) -> bool:
    if isinstance(a, str):
        return a == b
    if isinstance(b, str):
        return a.accepts(b)
    if b.converter == "path":  # many segments: no single-segment parameter takes them
        return False
    return a.converter in ("str", b.converter)


def _covers_host(j: str | None, i: str | None) -> bool:
    if j is None:
        return True
    if i is None:
        return False
    if not j.startswith("*."):
        return i == j
    suffix = j[1:]  # ".example.com"
    if i.startswith("*."):
        return i[1:].endswith(suffix)
    return len(i) > len(suffix) and i.endswith(suffix)


def _implied(
    j: Mapping[str, tuple[_Cond, ...]],
    i: Mapping[str, tuple[_Cond, ...]],
) -> bool:
    """Whether ``i``'s conditions guarantee each of ``j``'s."""
    for name, wanted in j.items():
        have = i.get(name, ())
        for kind, value in wanted:
            if kind == _ABSENT:
                ok = (_ABSENT, None) in have
            elif kind == _PRESENT:
                ok = any(k != _ABSENT for k, _ in have)
            else:
                ok = (_EQUALS, value) in have
            if not ok:
                return False
    return True
