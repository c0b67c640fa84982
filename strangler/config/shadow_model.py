"""The shadow part of the config model: frozen, slotted, keyword-only dataclasses.

A route's ``shadow:`` key mirrors a share of its requests to a second upstream in the
background and compares the two answers; the user only ever sees the primary's. Each
key, its default and its meaning are the dataclasses' below (README: "Shadow traffic").
``shadow: billing`` is short for ``shadow: {to: billing}``.

JSON paths are a small JSONPath subset: ``$`` then any of ``.name``, ``['any key']``,
``[3]``, ``[*]`` and ``.*`` (both wildcards match every array element and every
object member). ``str(JsonPath)`` writes a path back in that syntax.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, ClassVar, Final, TypeAlias

from strangler.config.model import NOWHERE, READ, Location
from strangler.config.values import BadValue

__all__ = [
    "ANY",
    "DEFAULT_COMPARE_HEADERS",
    "SHADOW_MARKER",
    "CompareRules",
    "ConfirmSpec",
    "JsonPath",
    "NoiseSpec",
    "ShadowSpec",
    "Step",
    "Wildcard",
    "parse_json_path",
]

SHADOW_MARKER: Final = "X-Strangler-Shadow"
"""Header added to every shadow (and noise) copy. A request that already carries it is
never shadowed again, so two strangler instances cannot mirror traffic in a loop."""


class Wildcard(enum.Enum):
    """The ``[*]`` / ``.*`` step: every element of an array, every member of an object."""

    ANY = "*"


ANY: Final = Wildcard.ANY

Step: TypeAlias = str | int | Wildcard
"""One JSON path step: an object key, an array index or the wildcard."""

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NAME_CHARS: Final = re.compile(r"[^.\[\]\s'\"]+")
_PATH_HINT: Final = "write a JSON path like $.generated_at or $.items[*].id"


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed JSON path: its steps from the root.

    >>> str(JsonPath(("items", ANY, "id")))
    '$.items[*].id'
    >>> str(JsonPath(("a b", 0)))
    "$['a b'][0]"
    """

    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return format_steps(self.steps)

    def generalized(self) -> JsonPath:
        """The same path with every array index replaced by ``[*]`` (a *pattern*).

        >>> str(JsonPath(("items", 3, "id")).generalized())
        '$.items[*].id'
        """
        if not any(type(s) is int for s in self.steps):
            return self
        return JsonPath(tuple(ANY if type(s) is int else s for s in self.steps))


def format_steps(steps: tuple[Step, ...]) -> str:
    """``("items", 3, "id")`` → ``$.items[3].id``; keys that are not plain names are
    quoted (``$['a.b']``) so the text parses back to the same steps."""
    parts = ["$"]
    for s in steps:
        if s is ANY:
            parts.append("[*]")
        elif isinstance(s, int):
            parts.append(f"[{s}]")
        elif _IDENT.fullmatch(s):
            parts.append(f".{s}")
        else:
            escaped = s.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


def parse_json_path(text: str) -> JsonPath:
    """A JSON path in the subset strangler supports, or ``BadValue`` saying why not.

    ``$`` is the whole document; then ``.name``, ``['any key']`` (or double quotes),
    ``[3]`` (an array index) and the wildcards ``[*]`` / ``.*``.

    >>> parse_json_path("$.items[*].id").steps
    ('items', <Wildcard.ANY: '*'>, 'id')
    >>> parse_json_path("$['a.b'][0]").steps
    ('a.b', 0)
    >>> parse_json_path("items.id")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: JSON path 'items.id' must start with '$'
    """
    text = text.strip()
    if not text.startswith("$"):
        hint = f"did you mean '$.{text}'?" if text and text[0] not in ".[" else _PATH_HINT
        raise BadValue(f"JSON path {text!r} must start with '$'", hint)
    steps: list[Step] = []
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == ".":
            if text.startswith("..", i):
                raise BadValue(
                    f"JSON path {text!r}: recursive descent '..' is not supported",
                    "write every step, using [*] for any element: $.items[*].id",
                )
            i += 1
            if i < n and text[i] == "*":
                steps.append(ANY)
                i += 1
                continue
            m = _NAME_CHARS.match(text, i)
            if m is None:
                raise BadValue(
                    f"JSON path {text!r}: expected a name after '.' at position {i}",
                    "quote unusual keys: $['a key']",
                )
            steps.append(m.group())
            i = m.end()
        elif c == "[":
            close, step = _bracket(text, i)
            steps.append(step)
            i = close + 1
        else:
            raise BadValue(
                f"JSON path {text!r}: unexpected {c!r} at position {i}",
                "steps are .name, ['key'], [3] or [*]",
            )
    return JsonPath(tuple(steps))


def _bracket(text: str, start: int) -> tuple[int, Step]:
    """The step in ``[...]`` at ``start``: (index of ``]``, step)."""
    i = start + 1
    if i < len(text) and text[i] in "'\"":
        quote, i = text[i], i + 1
        out: list[str] = []
        while i < len(text) and text[i] != quote:
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        if i + 1 >= len(text) or text[i + 1] != "]":
            raise BadValue(f"JSON path {text!r}: unterminated quoted key at position {start}")
        return i + 1, "".join(out)
    close = text.find("]", i)
    if close < 0:
        raise BadValue(f"JSON path {text!r}: '[' at position {start} is never closed")
    inner = text[i:close].strip()
    if inner == "*":
        return close, ANY
    if inner.isascii() and inner.isdigit():
        return close, int(inner)
    if inner.startswith("-") and inner[1:].isdigit():
        raise BadValue(
            f"JSON path {text!r}: negative index [{inner}] is not supported",
            "use [*] to match every element",
        )
    raise BadValue(
        f"JSON path {text!r}: [{inner}] is not an index, [*] or a quoted key",
        f"quote a key: ['{inner}']",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseSpec:
    """Learn which JSON paths keep differing between two answers of the *primary*: each
    shadowed safe request (GET, HEAD, OPTIONS) is read from it twice, doubling its load
    for them. A path is noisy, and not compared, only while it keeps flipping (README:
    "Noise"); paths keep their array indices, and never end at an array element."""

    enabled: Annotated[bool, kinds.STRICT] = False
    """Learn the primary's noise (a mapping turns it on unless it says false)."""
    samples: Annotated[int, kinds.Count(1)] = 2
    """A path is noisy when it differed in at least this many pairs..."""
    min_observations: Annotated[int, kinds.Count(1)] = 20
    """...of at least this many pairs in the window..."""
    share: Annotated[float, kinds.NOISE_SHARE] = 0.5
    """...and in at least this share of them."""
    window: Annotated[float, kinds.SLO_WINDOW] = 600.0
    """How far back noise is remembered (1s to 24h)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmSpec:
    """Confirm a mismatch before it counts (Diffy's primary, secondary, candidate): a
    safe request whose answers differ is read from the primary once more; a difference
    the two primary answers show too is a race or noise, and the job counts as
    ``unstable`` (README: "Confirming a mismatch"). With noise on, it confirms for free."""

    enabled: Annotated[bool, kinds.STRICT] = True
    """Re-read the primary before a mismatch counts."""
    max_share: Annotated[float, kinds.PERCENT] = 0.1
    """At most this share of compared requests get a confirming re-read."""


DEFAULT_COMPARE_HEADERS: Final = ("Content-Type",)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareRules:
    """How two answers are compared (``strangler.shadow.compare``): headers by all their
    values, in order. Bodies, once decoded (gzip, deflate, br): two JSON bodies
    structurally (key order never matters), any other body by SHA-256."""

    status: Annotated[bool, kinds.STRICT] = True
    """Compare status codes."""
    headers: Annotated[
        tuple[Annotated[str, kinds.HEADER_NAME], ...],
        kinds.Listed(same=str.lower, hint="header names are case-insensitive"),
    ] = DEFAULT_COMPARE_HEADERS
    """Response headers whose values must agree; [] compares none."""
    ignore: Annotated[tuple[Annotated[JsonPath, kinds.JSON_PATH], ...], kinds.Listed()] = ()
    """JSON paths never compared."""
    float_tolerance: Annotated[float, kinds.FLOAT_TOLERANCE] = 1e-9
    """Numbers agree when math.isclose(rel_tol=abs_tol=this)."""
    unordered_arrays: Annotated[
        tuple[Annotated[JsonPath, kinds.JSON_PATH], ...], kinds.Listed()
    ] = ()
    """JSON paths of arrays compared as multisets."""
    confirm: Annotated[ConfirmSpec, kinds.CONFIRM] = ConfirmSpec()
    """Re-read the primary before a mismatch counts (false: off)."""
    noise: Annotated[NoiseSpec, kinds.NOISE] = NoiseSpec()
    """Learn which paths differ between two answers of the primary (true: on)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowSpec:
    """Mirror a share of a route's requests to ``to`` and compare the answers. A request
    carrying ``X-Strangler-Shadow`` is never mirrored; an answer over ``max_body`` is
    compared on status and headers only (``truncated``); past ``concurrency`` and
    ``queue``, a request is not mirrored (``dropped``)."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "shadow: {to: billing, percent: 10%}"

    to: Annotated[str, kinds.text_like("billing")]
    """The upstream that gets the copy."""
    ratio: Annotated[float, kinds.key("percent"), kinds.SHARE] = 1.0
    """The share of the route's eligible requests mirrored."""
    writes: Annotated[bool, kinds.STRICT] = False
    """Mirror every method, not only GET, HEAD and OPTIONS."""
    max_body: Annotated[int, kinds.SIZE] = 1 << 20
    """The most body bytes captured per side (and of a mirrored request)."""
    concurrency: Annotated[int, kinds.Count(1)] = 16
    """Shadow exchanges in flight at once (per route, per worker)."""
    queue: Annotated[int, kinds.Count(0)] = 64
    """Jobs waiting for a slot; more are dropped and counted."""
    timeout: Annotated[float, kinds.SHADOW_TIMEOUT] = 30.0
    """The longest one shadow job may take, end to end (at most 1h)."""
    compare: CompareRules = CompareRules()
    """How the two answers are compared."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


# Last: kinds reads values, which reads model. The field annotations above are strings,
# resolved only when pydantic reads them.
from strangler.config import kinds  # noqa: E402
