"""Fold a concrete request path into an endpoint template: the remaining legacy surface
is counted per template, not per URL.

A segment that looks like a value, not a name, becomes a placeholder:

=========== ============================================== ==========================
placeholder what                                           example
=========== ============================================== ==========================
``{id}``    ASCII digits; or an id with a short prefix     ``123``, ``ord_12345``,
            (at least 5 digits, half the segment or more)  ``INV-2024-0001``
``{uuid}``  8-4-4-4-12 hex, either case                    ``0f8fad5b-d9cb-469f-...``
``{hash}``  16 or more hex digits                          ``9f86d081884c7d65``
``{date}``  ISO date or date-time                          ``2024-01-31``,
                                                           ``2024-01-31T10:00:00Z``
``{email}`` an e-mail address                              ``ann@example.com``
``{token}`` 20+ characters of base64/base64url that look   ``eyJhbGciOiJIUzI1NiJ9``
            random (letters mixed with digits, or upper
            and lower case mixed throughout)
=========== ============================================== ==========================

A value with a short extension keeps it (``123.json`` → ``{id}.json``), and a content
hash inside a file name (7+ hex digits, a digit and a letter among them, between
separators) is folded: ``app.039bac4c.js`` → ``app.{hash}.js``. Words, slugs
(``how-to-cook-2-eggs``), versions (``v2``) and short codes (``sha256``) are kept.
Over-long paths are cut (``MAX_SEGMENTS`` segments, ``MAX_TEMPLATE`` characters, then
``…``) so a scanner's 8 KiB URL cannot blow up the endpoint table.

>>> fold_path("/users/123/orders/9")
'/users/{id}/orders/{id}'
>>> fold_path("/reports/2024-01-31/summary.csv")
'/reports/{date}/summary.csv'

``probe_path`` turns a template back into a path the router can match, so a learned
endpoint that a route now claims can be recognised (``status.attribute``).
"""

from __future__ import annotations

import re
from typing import Final

from strangler.config.kinds import glob_regex

__all__ = [
    "MAX_SEGMENTS",
    "MAX_TEMPLATE",
    "PLACEHOLDERS",
    "fold_path",
    "ignore_pattern",
    "probe_path",
]

MAX_SEGMENTS: Final = 16
MAX_TEMPLATE: Final = 256
_CUT: Final = "…"

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HEX: Final = re.compile(r"[0-9a-fA-F]{16,}")
_DATE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_EMAIL: Final = re.compile(r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}")
_TOKEN_CHARS: Final = re.compile(r"[A-Za-z0-9_\-+=.~]{20,}")
_PARTS: Final = re.compile(r"[-_.~+=]")
# A part of a file name (between separators) of 7+ hex digits, with a digit and a letter.
_HASH_PART: Final = re.compile(
    r"(?<![0-9A-Za-z])(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}(?![0-9A-Za-z])"
)

# A sample value per placeholder that the router's converters accept
# (``{x:int}``, ``{x:uuid}``, plain ``{x}``).
PLACEHOLDERS: Final = {
    "{id}": "1",
    "{uuid}": "00000000-0000-4000-8000-000000000000",
    "{hash}": "0123456789abcdef0123456789abcdef",
    "{date}": "2024-01-31",
    "{email}": "user@example.com",
    "{token}": "T0kenT0kenT0kenT0ken",
}
_PLACEHOLDER: Final = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


def fold_path(path: str) -> str:
    """The endpoint template of a (percent-decoded) request path; pure, never raises."""
    segments = path.split("/", MAX_SEGMENTS + 1)
    cut = len(segments) > MAX_SEGMENTS + 1
    if cut:
        segments = segments[: MAX_SEGMENTS + 1]
    out = "/".join([_fold_segment(s) for s in segments])
    if cut:
        out += "/" + _CUT
    if len(out) > MAX_TEMPLATE:
        out = out[:MAX_TEMPLATE] + _CUT
    return out


def _fold_segment(s: str) -> str:
    if not s or (s.isalpha() and len(s) < 20):
        return s  # the common case: empty (leading "/") or a plain word
    if s.isascii() and s.isdigit():
        return "{id}"
    stem, dot, ext = s.rpartition(".")
    is_file = dot and stem and len(ext) <= 5 and ext.isascii() and ext.isalpha()
    if is_file and _HASH_PART.search(stem):
        # A bundler's content hash inside a file name: app.039bac4c.js, main-3f2a1c9e.css.
        whole = _fold_value(stem)  # a uuid or long hash as the whole stem
        if whole in ("{uuid}", "{hash}"):
            return whole + "." + ext
        return _HASH_PART.sub("{hash}", stem) + "." + ext
    folded = _fold_value(s)
    if folded is not None:
        return folded
    if is_file:
        folded = _fold_value(stem)
        if folded is not None:
            return folded + "." + ext
    return s


def _fold_value(s: str) -> str | None:
    """The placeholder for a segment that holds a value, else None."""
    n = len(s)
    if s.isascii() and s.isdigit():
        return "{id}"
    if n == 36 and _UUID.fullmatch(s):
        return "{uuid}"
    if n >= 16 and _HEX.fullmatch(s):
        return "{hash}"
    if n >= 10 and s[0].isdigit() and _DATE.fullmatch(s):
        return "{date}"
    if "@" in s and _EMAIL.fullmatch(s):
        return "{email}"
    if not s.isascii():
        return None
    digits = sum(c.isdigit() for c in s)
    if digits >= 5 and digits * 2 >= n:
        return "{id}"
    if n >= 20 and _TOKEN_CHARS.fullmatch(s) and _looks_random(s, digits):
        return "{token}"
    return None


def _looks_random(s: str, digits: int) -> bool:
    """True for an opaque token, False for a long slug or a camelCase word."""
    parts = [p for p in _PARTS.split(s) if p]
    if all(p.isalpha() or p.isdigit() for p in parts):
        return False  # words and numbers joined by separators: a slug
    if digits >= 2:
        return True  # letters and digits mixed inside one part
    upper = sum(c.isupper() for c in s)
    lower = sum(c.islower() for c in s)
    # camelCase has a capital per word; random base64 is about half upper case.
    return upper * 4 >= len(s) and lower * 4 >= len(s)


def probe_path(template: str) -> str:
    """A concrete path for ``template`` with a sample value in each placeholder.

    >>> probe_path("/users/{id}/files/{uuid}")
    '/users/1/files/00000000-0000-4000-8000-000000000000'
    """
    return _PLACEHOLDER.sub(lambda m: PLACEHOLDERS[m.group(0)], template)


def ignore_pattern(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for ``progress.ignore``'s globs (``fullmatch`` a path), or None."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{glob_regex(g)})" for g in globs))
