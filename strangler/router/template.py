"""Path templates: parse ``/users/{id:int}/files/{rest:path}`` once, match it many times.

A template is a path made of ``/``-separated segments. A segment is either literal
text or exactly one parameter ``{name}`` / ``{name:converter}`` that fills the whole
segment (``/report.{fmt}`` is rejected: write two routes or a prefix instead).

=========  ============================================  =====================
converter  matches                                       example value
=========  ============================================  =====================
``str``    one non-empty segment (the default)           ``alice``
``int``    one segment of ASCII digits                   ``0042``
``uuid``   one 8-4-4-4-12 hex segment, either case       ``0f8fad5b-d9cb-...``
``path``   the non-empty rest, ``/`` allowed; last only  ``a/b/c.txt``
=========  ============================================  =====================

Templates are matched against the percent-decoded request path (aiohttp's
``request.path``), so literal text is percent-decoded here too: ``/caf%C3%A9`` and
``/café`` are the same template, ``/a%20b`` matches the request ``/a%20b``, and
``%2F`` becomes a segment separator, exactly as it does in the request path. Parameter
values come back as the matched (decoded) strings; no conversion to ``int`` or
``UUID`` happens.

>>> t = parse_template("/users/{id:int}/files/{rest:path}")
>>> t.static_prefix, t.names
(('users',), ('id', 'rest'))
>>> dict(t.match("/users/7/files/a/b.txt") or {})
{'id': '7', 'rest': 'a/b.txt'}
>>> t.match("/users/seven/files/a") is None
True

``parse_template`` is the one validation entry point: the config validator calls it
and reports its ``ValueError`` message; the router calls it again at compile time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast, final
from urllib.parse import unquote

from strangler.config.model import EMPTY_MAP

__all__ = ["CONVERTERS", "Converter", "Param", "Template", "parse_template"]

Converter = Literal["str", "int", "uuid", "path"]

CONVERTERS: Final[Mapping[str, str]] = {
    "str": r"[^/]+",
    "int": r"[0-9]+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "path": r".+",
}
"""Converter name → the regex one parameter of that kind matches (never empty)."""

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@final
@dataclass(frozen=True, slots=True)
class Param:
    """One ``{name:converter}`` segment."""

    name: str
    converter: Converter

    def accepts(self, segment: str) -> bool:
        """Whether this parameter (not ``path``) matches one request segment."""
        return re.fullmatch(CONVERTERS[self.converter], segment) is not None


@final
@dataclass(frozen=True, slots=True)
class Template:
    """A parsed path template. Build it with ``parse_template``.

    ``text``: the template as written. ``segments``: the path split on ``/`` after
    the leading one; literal text percent-decoded as ``str``, parameters as
    ``Param``. ``names``: parameter names in order. ``static_prefix``: the literal
    segments before the first parameter (all of them when there is none).
    ``pattern``: the compiled regex, ``None`` when the template has no parameter.
    ``exact``: for a template without parameters, the one (decoded) path it
    matches; ``None`` otherwise.
    """

    text: str
    segments: tuple[str | Param, ...]
    names: tuple[str, ...]
    static_prefix: tuple[str, ...]
    pattern: re.Pattern[str] | None
    exact: str | None

    @property
    def is_static(self) -> bool:
        """True when the template has no parameter: it matches exactly ``exact``."""
        return self.exact is not None

    @property
    def has_tail(self) -> bool:
        """True when the last segment is a ``{name:path}`` parameter."""
        last = self.segments[-1]
        return isinstance(last, Param) and last.converter == "path"

    def match(self, path: str) -> Mapping[str, str] | None:
        """The parameters if ``path`` matches (``EMPTY_MAP`` for a static template), else None."""
        if self.pattern is None:
            return EMPTY_MAP if path == self.exact else None
        m = self.pattern.fullmatch(path)
        return None if m is None else m.groupdict()


def parse_template(template: str) -> Template:
    """Parse and compile ``template``; raise ``ValueError`` with a readable message if malformed.

    Malformed means: not starting with ``/``; a ``{`` without its ``}`` or a stray
    ``}``; a parameter that does not fill its whole segment; an empty or invalid
    parameter name; an unknown converter; a name used twice; ``path`` anywhere but
    the last segment.

    >>> parse_template("/users/{id")
    Traceback (most recent call last):
    ...
    ValueError: path template '/users/{id': unbalanced braces in segment '{id'
    """
    if not template.startswith("/"):
        raise _error(template, "must start with '/'")
    raw_segments = template[1:].split("/")
    segments: list[str | Param] = []
    names: list[str] = []
    regex: list[str] = []
    for position, raw in enumerate(raw_segments):
        if "{" not in raw and "}" not in raw:
            # Decoding may yield "/" (from %2F): that splits segments, as in requests.
            for literal in unquote(raw).split("/"):
                segments.append(literal)
                regex.append(re.escape(literal))
            continue
        param = _parse_param(template, raw)
        if param.name in names:
            raise _error(template, f"parameter name '{param.name}' is used twice")
        if param.converter == "path" and position != len(raw_segments) - 1:
            raise _error(
                template,
                f"'{{{param.name}:path}}' must be the last segment (it takes the rest of the path)",
            )
        segments.append(param)
        names.append(param.name)
        regex.append(f"(?P<{param.name}>{CONVERTERS[param.converter]})")

    static: list[str] = []
    for segment in segments:
        if isinstance(segment, Param):
            break
        static.append(segment)
    return Template(
        text=template,
        segments=tuple(segments),
        names=tuple(names),
        static_prefix=tuple(static),
        pattern=re.compile("/" + "/".join(regex), re.DOTALL) if names else None,
        exact=None if names else "/" + "/".join(static),
    )


def _parse_param(template: str, raw: str) -> Param:
    opens, closes = raw.count("{"), raw.count("}")
    if opens != closes or (opens and raw.find("{") > raw.find("}")):
        raise _error(template, f"unbalanced braces in segment '{raw}'")
    if opens > 1:
        raise _error(
            template,
            f"segment '{raw}' holds more than one parameter; "
            "a segment is literal text or exactly one parameter",
        )
    if not (raw.startswith("{") and raw.endswith("}")):
        raise _error(
            template,
            f"segment '{raw}' mixes a parameter with other text; "
            "a parameter must fill the whole segment, like '/{name}'",
        )
    name, sep, converter = raw[1:-1].partition(":")
    if not _NAME.fullmatch(name):
        shown = f"'{name}'" if name else "an empty name"
        raise _error(
            template,
            f"bad parameter name {shown} in '{raw}' "
            "(use letters, digits and '_', not starting with a digit)",
        )
    if not sep:
        return Param(name, "str")
    if converter not in CONVERTERS:
        raise _error(
            template,
            f"unknown converter '{converter}' for parameter '{name}' "
            f"(use one of: {', '.join(CONVERTERS)})",
        )
    return Param(name, cast(Converter, converter))


def _error(template: str, problem: str) -> ValueError:
    return ValueError(f"path template '{template}': {problem}")
