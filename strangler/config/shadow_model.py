"""The shadow part of the config model: frozen, slotted, keyword-only dataclasses.

A route's ``shadow:`` key mirrors a share of its requests to a second upstream in the
background and compares the two answers; the user only ever sees the primary's.

.. code-block:: yaml

    shadow:
      to: billing              # required: the upstream that gets the copy
      percent: 100%            # share of the route's eligible requests mirrored
      writes: false            # mirror only GET/HEAD/OPTIONS unless true
      max_body: 1MiB           # most body bytes captured per side (and per request copy)
      concurrency: 16          # shadow exchanges in flight at once (per route, per worker)
      queue: 64                # jobs waiting for a slot; more are dropped and counted
      timeout: 30s             # the longest one shadow job may take, end to end
      compare:
        status: true           # compare status codes
        headers: [Content-Type]              # response headers whose values must agree
        ignore: [$.generated_at, $.items[*].id]   # JSON paths never compared
        float_tolerance: 1e-9  # numbers agree when math.isclose(rel_tol=abs_tol=this)
        unordered_arrays: [$.tags]           # arrays compared as multisets
        confirm: {enabled: true, max_share: 10%}  # re-read the primary before a mismatch counts
        noise: {enabled: false, samples: 2, min_observations: 20, share: 50%, window: 10m}

``shadow: billing`` is short for ``shadow: {to: billing}``. Every default above is the
dataclass default below.

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
    """Learn which JSON paths keep differing between two answers of the *primary*.

    With ``enabled``, every shadowed request with a safe method (GET, HEAD, OPTIONS;
    never a write, whatever ``writes`` says) is also sent a second time to the
    upstream that answered the user (usually legacy), after the shadow's answer
    arrived. Paths where those two answers differ are noise for that request and are
    not counted against parity. Across requests, a path is *noisy* (excluded from
    every comparison of the route) only while it keeps flipping: over the last
    ``window`` seconds there were at least ``min_observations`` such pairs, the path
    differed in at least ``samples`` of them, and in at least ``share`` of them. A
    field that differs every time (a timestamp, a request id) stays noisy; a record
    that changed once because a user wrote to it (a race) never reaches the share,
    and a path that stops flipping is compared again once the window has moved on.
    Paths are learned as they are, with their array indices (``$.items[3].at``), and
    never a path that ends at an array element: one changed element never blinds
    the comparison of a whole array. This doubles the primary's load for shadowed
    requests; lower ``percent`` to bound it.

    In the config, ``noise: true`` turns it on with the defaults, and a mapping turns
    it on unless it says ``enabled: false``.
    """

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
    """Confirm a mismatch before it counts (Diffy's primary, secondary, candidate).

    With ``enabled`` (the default), when the shadow's answer to a safe request (GET,
    HEAD, OPTIONS; never a write) differs from the primary's, the request is sent to
    the primary once more (with the shadow marker, in the background) after the
    shadow's answer arrived. A difference that the second primary answer also shows
    against the first is a race with a write or noise, not a regression: the job
    counts as ``unstable`` (apart from parity) instead of ``mismatch``.

    ``max_share`` bounds the extra load on the primary: at most that share of the
    route's compared requests get a confirming re-read (a budget that refills with
    every comparison); a mismatch past the budget counts as a mismatch, unconfirmed.
    With noise learning on, every safe request is re-read anyway and confirms for
    free.

    In the config, ``confirm: false`` turns it off; a mapping turns it on unless it
    says ``enabled: false``.
    """

    enabled: Annotated[bool, kinds.STRICT] = True
    """Re-read the primary before a mismatch counts."""
    max_share: Annotated[float, kinds.PERCENT] = 0.1
    """At most this share of compared requests get a confirming re-read."""


DEFAULT_COMPARE_HEADERS: Final = ("Content-Type",)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareRules:
    """How two answers are compared (see ``strangler.shadow.compare``).

    ``status``: compare status codes. ``headers``: response header names whose values
    must agree (all values, in order; names case-insensitive). Bodies: after
    Content-Encoding (gzip, deflate, br) is decoded, two JSON bodies are compared
    structurally (key order never matters; arrays in order unless their path is in
    ``unordered_arrays``; numbers equal within ``float_tolerance``, relative and
    absolute; anything under an ``ignore`` path skipped), any other body by SHA-256.
    """

    status: Annotated[bool, kinds.STRICT] = True
    """Compare status codes."""
    headers: Annotated[
        tuple[Annotated[str, kinds.HEADER_NAME], ...],
        kinds.Unique(str.lower, "header names are case-insensitive"),
    ] = DEFAULT_COMPARE_HEADERS
    """Response headers whose values must agree; [] compares none."""
    ignore: Annotated[tuple[Annotated[JsonPath, kinds.JSON_PATH], ...], kinds.Unique()] = ()
    """JSON paths never compared."""
    float_tolerance: Annotated[float, kinds.FLOAT_TOLERANCE] = 1e-9
    """Numbers agree when math.isclose(rel_tol=abs_tol=this)."""
    unordered_arrays: Annotated[
        tuple[Annotated[JsonPath, kinds.JSON_PATH], ...], kinds.Unique()
    ] = ()
    """JSON paths of arrays compared as multisets."""
    confirm: Annotated[ConfirmSpec, kinds.CONFIRM] = ConfirmSpec()
    """Re-read the primary before a mismatch counts (false: off)."""
    noise: Annotated[NoiseSpec, kinds.NOISE] = NoiseSpec()
    """Learn which paths differ between two answers of the primary (true: on)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowSpec:
    """Mirror a share of a route's requests to ``to`` and compare the answers.

    ``ratio``: the share of eligible requests mirrored, in [0, 1] (config
    ``percent``). Eligible: the method is GET, HEAD or OPTIONS (any method when
    ``writes``), and the request does not carry ``X-Strangler-Shadow``.
    ``max_body``: the most bytes captured of each response body (an answer over it is
    compared on status and headers only, and the verdict says ``truncated``) and of a
    mirrored request body (a longer one is not mirrored). ``concurrency`` and
    ``queue`` bound the route's background work per worker: past both, a request is
    not mirrored and counts as ``dropped``. ``timeout``: the longest a shadow job may
    run, from its start to its verdict (including waiting for the primary's body).
    """

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
