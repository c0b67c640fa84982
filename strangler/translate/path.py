"""``path:`` steps (request only): a new path (and Host) for the new service.

Header-phase: never reads the body. One step does one of:

- ``rewrite: "/customers/{id}"``: the whole path from a template; ``{name}`` is the
  route's template parameter, percent-encoded again (``/`` kept, for ``{x:path}``).
  The validator checks every name against the route's ``match.path``.
- ``regex: {pattern, replace}``: ``re.sub`` once on the raw path (``\\1``,
  ``\\g<name>``); a path the pattern misses is kept.
- ``prefix: {strip: /api/v1, add: /v2}``: take those whole leading segments off
  (a path without them is a 400: the route and the step disagree), then put ``add``
  in front.

and, alone or with one of those, ``host: new.example``: the ``Host`` header sent.

>>> from multidict import CIMultiDict
>>> from strangler.config.translate_model import PathStep, Prefix
>>> from strangler.translate.base import TranslateRequest
>>> msg = TranslateRequest.from_target("GET", "/api/v1/x?y=1", CIMultiDict())
>>> build(PathStep(prefix=Prefix(strip="/api/v1", add="/v2")), "request.path").apply(msg).target
'/v2/x?y=1'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final, final
from urllib.parse import quote

from multidict import istr

from strangler.config.translate_model import PathStep, Prefix
from strangler.translate.base import TranslateError, TranslateRequest

__all__ = ["PathTransform", "build", "fill", "set_query", "strip_prefix"]

_HOST: Final = istr("Host")
_SAFE: Final = "/:@!$&'()*+,;="  # RFC 3986 pchar (and "/"), left as they are


def strip_prefix(path: str, prefix: str) -> str | None:
    """``path`` without the whole leading segments ``prefix``, or ``None``.

    >>> strip_prefix("/api/v1/x", "/api/v1"), strip_prefix("/api/v10", "/api/v1")
    ('/x', None)
    """
    base = prefix.rstrip("/")
    if path == base:
        return "/"
    if path.startswith(base + "/"):
        return path[len(base) :]
    return None


_FIELD: Final = re.compile(r"\{([^{}]+)\}")
_QUERY_FIELD: Final = "query."


def fill(template: str) -> Callable[[Mapping[str, str]], str]:
    """A function that fills ``{name}`` fields of ``template`` from a mapping (raises
    ``KeyError`` naming a missing one); parsed once, at compile time.

    >>> fill("c-{id}")({"id": "7"}), fill("plain")({})
    ('c-7', 'plain')
    """
    parts = _FIELD.split(template)  # literal, name, literal, name, ..., literal
    if len(parts) == 1:
        return lambda _: template
    literals, names = parts[0::2], parts[1::2]

    def run(values: Mapping[str, str]) -> str:
        out = [literals[0]]
        for name, literal in zip(names, literals[1:], strict=True):
            out.append(values[name])
            out.append(literal)
        return "".join(out)

    return run


def _rewrite(template: str, step: str) -> Callable[[TranslateRequest], None]:
    """``rewrite``: the path from the template; ``{query.NAME}`` takes (and removes) the
    first value of a query parameter; a ``?a={x}`` part sets parameters on the query."""
    path, _, query = template.partition("?")
    names = _FIELD.findall(path)
    moved = tuple(n[len(_QUERY_FIELD) :] for n in names if n.startswith(_QUERY_FIELD))
    path_of = fill(path)
    sets = tuple(
        (name, fill(value))
        for name, _, value in (pair.partition("=") for pair in query.split("&") if pair)
    )

    def run(msg: TranslateRequest) -> None:
        values: dict[str, str] = {}
        try:
            for name in names:
                if not name.startswith(_QUERY_FIELD):
                    values[name] = quote(msg.params[name], safe=_SAFE)
        except KeyError as err:
            raise TranslateError(step, f"the route has no parameter {err.args[0]!r}") from None
        if moved:
            query_now = msg.query
            for name in moved:
                found = next((v for k, v in query_now if k == name), None)
                if found is None:
                    raise TranslateError(step, f"the request has no query parameter {name!r}")
                values[_QUERY_FIELD + name] = quote(found, safe=_SAFE)
            msg.query = [(k, v) for k, v in query_now if k not in moved]
        msg.path = path_of(values)
        if sets:
            try:
                pairs = [(name, value(msg.params)) for name, value in sets]
            except KeyError as err:
                raise TranslateError(step, f"the route has no parameter {err.args[0]!r}") from None
            msg.query = set_query(msg.query, pairs)

    return run


def set_query(
    query: list[tuple[str, str]], values: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``query`` with each name set: its first occurrence takes the value and later ones
    go; a name not there is appended.

    >>> set_query([("a", "1"), ("b", "2"), ("a", "3")], [("a", "x"), ("c", "y")])
    [('a', 'x'), ('b', '2'), ('c', 'y')]
    """
    for name, value in values:
        out: list[tuple[str, str]] = []
        done = False
        for k, v in query:
            if k != name:
                out.append((k, v))
            elif not done:
                out.append((k, value))
                done = True
        if not done:
            out.append((name, value))
        query = out
    return query


@final
class PathTransform:
    """A compiled ``path:`` step."""

    __slots__ = ("_add", "_host", "_regex", "_replace", "_rewrite", "_strip", "step")

    needs_body: Final = False

    def __init__(self, spec: PathStep, step: str) -> None:
        self.step = step
        self._rewrite = None if spec.rewrite is None else _rewrite(spec.rewrite, step)
        self._regex = None if spec.regex is None else re.compile(spec.regex.pattern)
        self._replace = "" if spec.regex is None else spec.regex.replace
        prefix = spec.prefix or Prefix(add="")
        self._strip = prefix.strip
        self._add = (prefix.add or "").rstrip("/")
        self._host = spec.host

    def apply(self, msg: TranslateRequest, /) -> TranslateRequest:
        if self._rewrite is not None:
            self._rewrite(msg)
        elif self._regex is not None:
            msg.path = self._regex.sub(self._replace, msg.path, count=1)
        elif self._strip is not None or self._add:
            path = msg.path
            if self._strip is not None:
                stripped = strip_prefix(path, self._strip)
                if stripped is None:
                    raise TranslateError(
                        self.step, f"the path {path!r} does not start with {self._strip!r}"
                    )
                path = stripped
            if self._add:
                path = self._add if path == "/" else self._add + path
            msg.path = path
        if self._host is not None:
            msg.headers[_HOST] = self._host
        return msg


def build(spec: PathStep, step: str) -> PathTransform:
    """The factory: a ``PathTransform`` for ``spec``."""
    return PathTransform(spec, step)
