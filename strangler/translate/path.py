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
>>> from strangler.config.translate_model import PathStep
>>> from strangler.translate.base import TranslateRequest
>>> msg = TranslateRequest.from_target("GET", "/api/v1/x?y=1", CIMultiDict())
>>> build(PathStep(strip="/api/v1", add="/v2"), "request.path").apply(msg).target
'/v2/x?y=1'
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Final, final
from urllib.parse import quote

from multidict import istr

from strangler.config.translate_model import PathStep
from strangler.translate.base import TranslateError, TranslateRequest

__all__ = ["PathTransform", "build", "strip_prefix"]

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


def _rewrite(template: str, step: str) -> Callable[[TranslateRequest], str]:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]

    def run(msg: TranslateRequest) -> str:
        try:
            values = {name: quote(msg.params[name], safe=_SAFE) for name in fields}
        except KeyError as err:
            raise TranslateError(step, f"the route has no parameter {err.args[0]!r}") from None
        return template.format_map(values)

    return run


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
        self._strip = spec.strip
        self._add = (spec.add or "").rstrip("/")
        self._host = spec.host

    def apply(self, msg: TranslateRequest, /) -> TranslateRequest:
        if self._rewrite is not None:
            msg.path = self._rewrite(msg)
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
